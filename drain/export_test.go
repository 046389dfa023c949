package drain

// SetBeforeRename installs a hook that runs between writing the temporary
// state file and renaming it into place; returning an error stops the
// write there, as a crash would.
func (s *Store) SetBeforeRename(f func() error) { s.beforeRename = f }
