// Package dnstest holds test helpers for DNS code: an in-process UDP and
// TCP server on 127.0.0.1 ([Start]), a fake [dns.ResponseWriter] that
// captures what a handler writes ([Recorder]), and answer-table cases that
// compare message sections as sorted RR presentation strings, TTLs
// included ([Case]).
//
// It imports nothing of gslbd, so any package may use it in its tests.
// Nothing here sleeps or uses fixed ports.
package dnstest
