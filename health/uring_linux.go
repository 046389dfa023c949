//go:build linux

package health

import (
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// uring is an io_uring instance that the probe loop uses to make a batch
// of non-blocking sends or receives in one system call. Where the kernel
// isolates its page tables and runs under a hypervisor, entering it costs
// about 1.1 µs before it does any work, a third of what it then does for
// a probe's exchange on a kept connection (TestProbeFloor measures both
// ways). Every operation
// carries MSG_DONTWAIT, so the kernel completes each of them during the
// call that submits it (with EAGAIN where a plain call would say so): the
// ring never holds work across calls, and a batch's results are all in
// the completion queue when submit returns.
//
// It belongs to one goroutine (the loop's).
type uring struct {
	fd int

	sqHead, sqTail *uint32
	sqMask         uint32
	sqEntries      uint32
	sqArray        []uint32
	sqes           []uringSQE

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []uringCQE

	maps [][]byte
	// queued counts the entries written since the last submit.
	queued uint32
}

// The kernel's structures and constants (linux/io_uring.h).
type uringSQE struct {
	opcode   uint8
	flags    uint8
	ioprio   uint16
	fd       int32
	off      uint64
	addr     uint64
	len      uint32
	msgFlags uint32
	userData uint64
	bufIndex uint16
	persona  uint16
	splice   int32
	addr3    uint64
	_        uint64
}

type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	_                                                                      [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, _ uint32
		_                                                           uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, _ uint32
		_                                                           uint64
	}
}

const (
	sysIOURingSetup = 425
	sysIOURingEnter = 426

	uringOpSend = 26
	uringOpRecv = 27

	uringSetupSubmitAll = 1 << 7
	uringFeatSingleMmap = 1 << 0
	uringEnterGetEvents = 1 << 0

	uringOffSQRing = 0
	uringOffCQRing = 0x8000000
	uringOffSQEs   = 0x10000000
)

// ringMaker makes the probe loop's ring (newURing, or a test's).
type ringMaker = func(entries uint32) (*uring, error)

// newURing makes a ring of entries submission slots (a power of two).
func newURing(entries uint32) (*uring, error) { return newURingFlags(entries, 0) }

// newURingFlags makes a ring with setup flags (IORING_SETUP_*) besides
// those newURing sets.
func newURingFlags(entries, flags uint32) (*uring, error) {
	var p uringParams
	p.flags = uringSetupSubmitAll | flags
	fd, _, errno := syscall.RawSyscall(sysIOURingSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno == syscall.EINVAL {
		// A kernel before 5.18: every operation here is submitted
		// anyway, since none fails before it is issued.
		p = uringParams{flags: flags}
		fd, _, errno = syscall.RawSyscall(sysIOURingSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	}
	if errno != 0 {
		return nil, os.NewSyscallError("io_uring_setup", errno)
	}
	r := &uring{fd: int(fd)}
	fail := func(err error) (*uring, error) {
		r.close()
		return nil, err
	}
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(uringCQE{})))
	if p.features&uringFeatSingleMmap != 0 {
		sqSize = max(sqSize, cqSize)
	}
	sq, err := r.mmap(uringOffSQRing, sqSize)
	if err != nil {
		return fail(err)
	}
	cq := sq
	if p.features&uringFeatSingleMmap == 0 {
		if cq, err = r.mmap(uringOffCQRing, cqSize); err != nil {
			return fail(err)
		}
	}
	sqes, err := r.mmap(uringOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(uringSQE{})))
	if err != nil {
		return fail(err)
	}
	r.sqHead = (*uint32)(unsafe.Pointer(&sq[p.sqOff.head]))
	r.sqTail = (*uint32)(unsafe.Pointer(&sq[p.sqOff.tail]))
	r.sqMask = *(*uint32)(unsafe.Pointer(&sq[p.sqOff.ringMask]))
	r.sqEntries = p.sqEntries
	r.sqArray = unsafe.Slice((*uint32)(unsafe.Pointer(&sq[p.sqOff.array])), p.sqEntries)
	r.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&sqes[0])), p.sqEntries)
	r.cqHead = (*uint32)(unsafe.Pointer(&cq[p.cqOff.head]))
	r.cqTail = (*uint32)(unsafe.Pointer(&cq[p.cqOff.tail]))
	r.cqMask = *(*uint32)(unsafe.Pointer(&cq[p.cqOff.ringMask]))
	r.cqes = unsafe.Slice((*uringCQE)(unsafe.Pointer(&cq[p.cqOff.cqes])), p.cqEntries)
	return r, nil
}

func (r *uring) mmap(off int64, size int) ([]byte, error) {
	b, err := syscall.Mmap(r.fd, off, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	r.maps = append(r.maps, b)
	return b, nil
}

func (r *uring) close() {
	for _, b := range r.maps {
		syscall.Munmap(b)
	}
	r.maps = nil
	if r.fd >= 0 {
		syscall.Close(r.fd)
		r.fd = -1
	}
}

// room says how many more operations fit before the next submit.
func (r *uring) room() int { return int(r.sqEntries - r.queued) }

// queue adds a send (op uringOpSend) of b on fd, or a receive
// (uringOpRecv) into b, tagged with tag. The caller keeps b alive and
// untouched until submit returns, and checks room first.
func (r *uring) queue(op uint8, fd int, b []byte, tag uint64) {
	r.push(uringSQE{
		opcode:   op,
		fd:       int32(fd),
		addr:     uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))),
		len:      uint32(len(b)),
		msgFlags: syscall.MSG_DONTWAIT | syscall.MSG_NOSIGNAL,
		userData: tag,
	})
}

// push adds sqe to the submission queue; the caller checks room first.
func (r *uring) push(sqe uringSQE) {
	tail := *r.sqTail
	i := tail & r.sqMask
	r.sqes[i] = sqe
	r.sqArray[i] = i
	atomic.StoreUint32(r.sqTail, tail+1)
	r.queued++
}

// submit makes the queued operations and calls done with each one's tag
// and result (a byte count, or a negated errno). It returns how many of
// them the kernel took, in the order they were queued: on an error, done
// may not have been called for some of those, and the ring is not to be
// used again.
func (r *uring) submit(done func(tag uint64, res int32)) (submitted int, err error) {
	want := r.queued
	r.queued = 0
	sent := uint32(0)
	for sent < want {
		n, _, errno := syscall.RawSyscall6(sysIOURingEnter, uintptr(r.fd), uintptr(want-sent), 0, 0, 0, 0)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno != 0:
			return int(sent), os.NewSyscallError("io_uring_enter", errno)
		}
		sent += uint32(n)
	}
	for got := uint32(0); got < want; {
		head, tail := *r.cqHead, atomic.LoadUint32(r.cqTail)
		if head == tail {
			// Not done inline after all: wait for it, as a call
			// that may block.
			_, _, errno := syscall.Syscall6(sysIOURingEnter, uintptr(r.fd), 0, uintptr(want-got), uringEnterGetEvents, 0, 0)
			if errno != 0 && errno != syscall.EINTR {
				return int(sent), os.NewSyscallError("io_uring_enter", errno)
			}
			continue
		}
		for ; head != tail; head++ {
			c := &r.cqes[head&r.cqMask]
			done(c.userData, c.res)
			got++
		}
		atomic.StoreUint32(r.cqHead, head)
	}
	return int(sent), nil
}
