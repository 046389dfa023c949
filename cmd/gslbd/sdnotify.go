package main

import (
	"net"
	"strings"
)

// sdNotify sends state (READY=1, RELOADING=1, STOPPING=1, STATUS=...) to
// the service manager over the datagram socket named by $NOTIFY_SOCKET,
// the sd_notify(3) protocol: systemd's Type=notify. Without the variable
// it does nothing. A name starting with @ is a Linux abstract socket.
// Errors are returned for the caller to log; they never stop the node.
func sdNotify(socket, state string) error {
	if socket == "" {
		return nil
	}
	if strings.HasPrefix(socket, "@") {
		socket = "\x00" + socket[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}
