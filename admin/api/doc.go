// Package api is the wire side of gslbd's admin HTTP API, shared by the
// server (package admin) and its clients (the gslbd operator commands):
// the JSON bodies of every endpoint, the syntax checks of the write
// bodies, a typed [Client], and the text rendering of answers for
// people.
//
// The JSON field names and shapes of these types are the API: change
// them only compatibly. Values are plain data, safe to copy; a [Client]
// is safe for concurrent use.
//
// # Endpoints
//
//	GET    /api/v1/status        [Status]
//	GET    /api/v1/drains        [DrainList] (?all=true: tombstones and expired drains too)
//	GET    /api/v1/drains/{id}   drain.Record
//	POST   /api/v1/drains        [CreateDrain] -> 201 [Result]
//	DELETE /api/v1/drains/{id}   [DeleteDrain] (optional) -> [Result]
//	GET    /api/v1/events        [EventList] (?limit=N, newest first)
//
// Every error answer has an [Error] body; [Client] returns it as a
// [*StatusError].
package api
