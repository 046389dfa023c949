// Package zones owns the authoritative data a gslbd node serves: RFC 1035
// zone files and the service definitions (which owner names are answered
// from health-checked endpoints, with which policy).
//
// [Load] reads and validates everything and returns either a new [*Set] or
// every problem found, each as "file:line: message". A Set is immutable
// after it is built and safe for concurrent use by any number of
// goroutines; a reload builds a new Set and the old one stays valid for as
// long as anyone holds it.
//
// Names are stored canonical (lowercase, fully qualified). Callers convert
// once at the boundary with dns.CanonicalName.
package zones
