package scenario

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill the child when the test binary dies,
// so that not even a crashed or killed test leaves processes behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
