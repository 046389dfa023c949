package drain

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FileName is the state file's name inside the node's state directory.
const FileName = "drains.json"

// fileVersion is the layout of the state file; a newer one is refused
// rather than misread.
const fileVersion = 1

// tempPrefix starts the names of temporary files written next to the
// state file; Load removes any left by a crash.
const tempPrefix = ".drains.json.tmp-"

// stateFile is the state file's content.
type stateFile struct {
	Version int       `json:"version"`
	Node    string    `json:"node"`
	Saved   time.Time `json:"saved"`
	// Clock is the last stamp this node issued or observed, so the clock
	// resumes past it even when every record carrying it has been
	// forgotten.
	Clock   Stamp    `json:"clock"`
	Records []Record `json:"records"`
}

// loadFile reads the state file at path. A missing file is an empty
// state. Temporary files left next to it by a crash are removed.
func loadFile(path string) (stateFile, error) {
	removeTemps(filepath.Dir(path))
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return stateFile{Version: fileVersion}, nil
	}
	if err != nil {
		return stateFile{}, fmt.Errorf("read drain state: %w", err)
	}
	var sf stateFile
	if err := json.Unmarshal(data, &sf); err != nil {
		return stateFile{}, fmt.Errorf("drain state %s: %w (move the file aside to start without drains)", path, err)
	}
	if sf.Version != fileVersion {
		return stateFile{}, fmt.Errorf("drain state %s: version %d, this gslbd reads version %d", path, sf.Version, fileVersion)
	}
	var errs []error
	for _, r := range sf.Records {
		if err := r.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return stateFile{}, fmt.Errorf("drain state %s: %w (move the file aside to start without drains)", path, err)
	}
	return sf, nil
}

// writeFile replaces the file at path with sf, atomically: a temporary
// file in the same directory, fsynced, renamed over path, then the
// directory fsynced so the rename itself is durable. On error the old
// file is untouched. beforeRename, when not nil, runs between the fsync
// and the rename; tests use it to stop there as a crash would.
func writeFile(path string, sf stateFile, beforeRename func() error) (err error) {
	data, err := json.MarshalIndent(sf, "", "  ")
	if err != nil {
		return fmt.Errorf("encode drain state: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write drain state: %w", err)
	}
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("write drain state: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write drain state: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write drain state: fsync: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write drain state: %w", err)
	}
	if beforeRename != nil {
		if err = beforeRename(); err != nil {
			return err
		}
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write drain state: %w", err)
	}
	if err = syncDir(dir); err != nil {
		return fmt.Errorf("write drain state: fsync %s: %w", dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeTemps deletes temporary files a crash left in dir.
func removeTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
