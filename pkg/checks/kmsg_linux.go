package checks

import (
	"bytes"
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// readKmsg reads the kernel log. A character device (/dev/kmsg) is read one
// record per read(2), without blocking, up to its current end (EAGAIN);
// records overwritten while reading (EPIPE) are skipped. Anything else is
// read to EOF as kmsg records or dmesg lines.
func readKmsg(path string) ([]kmsgRecord, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&os.ModeCharDevice == 0 {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return parseKmsg(f)
	}
	// Not os.File: the runtime poller would park a read at the end of
	// /dev/kmsg instead of returning EAGAIN.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var out []kmsgRecord
	buf := make([]byte, 16*1024)
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return out, nil
		case errors.Is(err, unix.EPIPE), errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return out, &os.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			return out, nil
		}
		rec := buf[:n]
		// A record is "head;message\n" followed by " KEY=value" lines.
		if i := bytes.IndexByte(rec, '\n'); i >= 0 {
			rec = rec[:i]
		}
		out = append(out, parseKmsgLine(string(rec)))
	}
}
