package transport

import (
	"net"
	"syscall"
)

// quickAckConn acknowledges every segment at once. sshd does not set TCP_NODELAY on sessions
// without a terminal, so its small writes (a command's output, then the end markers) wait
// for the ACK of the previous one (Nagle); with the kernel's delayed ACK that costs up to
// 40 ms per command once several hosts keep the CPUs busy. Linux clears TCP_QUICKACK after
// use, so it is set again after every read.
type quickAckConn struct {
	*net.TCPConn
	raw syscall.RawConn
}

func withQuickAck(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	q := &quickAckConn{TCPConn: tc, raw: raw}
	q.quickAck()
	return q
}

func (q *quickAckConn) quickAck() {
	_ = q.raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpQuickAck, 1)
	})
}

// tcpQuickAck is Linux's TCP_QUICKACK.
const tcpQuickAck = 0xc

func (q *quickAckConn) Read(p []byte) (int, error) {
	n, err := q.TCPConn.Read(p)
	q.quickAck()
	return n, err
}
