//go:build !linux

package scenario

import "os/exec"

// setProcAttr does nothing here: only Linux can tie a child's life to its
// parent's. The cleanup still kills every child when the test ends.
func setProcAttr(*exec.Cmd) {}
