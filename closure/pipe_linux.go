package closure

import (
	"os"

	"golang.org/x/sys/unix"
)

// widenPipe asks for a 1 MiB pipe buffer (at most /proc/sys/fs/pipe-max-size,
// 1 MiB by default, for unprivileged processes); failure is harmless.
func widenPipe(f *os.File) {
	if sc, err := f.SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) {
			_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20)
		})
	}
}
