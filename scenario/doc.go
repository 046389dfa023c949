// Package scenario measures gslbd's site failover end to end, on real
// processes: the gslbd binary, real HTTP endpoints and the real dig. It
// holds no product code; everything is in its tests.
//
// # The three-site scenario (TestFailover)
//
// Four gslbd nodes run as separate processes, each with its DNS, gossip and
// admin listeners on its own loopback address: dc1-a (127.0.1.1) and dc1-b
// (127.0.1.2) in site dc1, dc2-a (127.0.2.1) in dc2 and dc3-a (127.0.3.1)
// in dc3. Every node seeds its gossip with the other three. The service
// talk.example.com fails over in the order dc1, dc2, dc3 (min_healthy 1,
// all_down all) between HTTP endpoints 127.0.1.10 and 127.0.1.11 (dc1),
// 127.0.2.10 (dc2) and 127.0.3.10 (dc3), all on one port, with the
// default health-check settings. Each endpoint is a process of its own (the
// test binary re-executed with GSLBD_SCENARIO_ENDPOINT=ip:port), so a
// SIGKILL takes it away the way a crash does. Every port is picked free at
// run time.
//
// One goroutine per node runs dig (+short +time=1 +tries=1) in a tight
// loop; a node's time is when the first dig whose answer meets the
// condition returned, so each figure is an upper bound with a resolution of
// one dig run (printed with the results). A trial's time is the slowest
// node's.
//
//  1. "endpoints fail": SIGKILL dc1's two endpoints while its nodes run;
//     time until no node answers a dc1 address. "endpoints return":
//     restart them; time from the first of them accepting connections
//     (with min_healthy 1, dc1 is eligible again from then on) until every
//     node answers dc1 again.
//  2. "site dies": SIGKILL dc1's two nodes and two endpoints at once; time
//     until neither dc2-a nor dc3-a answers a dc1 address.
//  3. "site returns": restart dc1's nodes and endpoints together; time
//     from the first endpoint accepting until every node, the restarted
//     ones as soon as they serve, answers dc1 again.
//
// For the returns the pollers start before the processes do, and an
// endpoint reports the moment it began to accept, so a node that hands out
// dc1 while none of its endpoints is back is caught and fails the test.
//
// Between trials the test waits until every node answers dc1 and every
// node's /api/v1/status lists all four nodes alive with a report received
// from each. Then, with nothing failing, every node is polled for the
// stability period and each change of a node's answer is counted.
//
// The results are printed as a table of min, median, p99 and max seconds
// per trial (nearest-rank p99: with fewer than 100 trials it is the
// maximum), overall and per node. The test asserts only generous bounds
// (failure detection p99 under 5 s, return under 10 s, no answer change
// while stable); the measured figures are the product. With
// -scenario.strict it asserts the targets instead: p99 at most 1 s for
// trials 1 and 2 on every node and at most 2 s for the returns.
//
// # Running it
//
// The short form (3 trials each, 10 s of stability, well under two
// minutes) is part of go test ./... and make test:
//
//	go test ./scenario -run TestFailover -v -count=1
//
// The long form (about 20 minutes):
//
//	go test ./scenario -run TestFailover -v -count=1 -scenario.trials=20 -scenario.stable=10m -timeout 30m
//
// The environment variables GSLBD_SCENARIO_TRIALS and GSLBD_SCENARIO_STABLE
// set the defaults of the two flags. The test needs dig (bind9-dnsutils):
// without it the test is skipped, or fails when CI or GSLBD_REQUIRE_DIG is
// set. It uses only 127.0.0.0/8 addresses, which Linux routes to the
// loopback interface without configuration. Every process it starts is
// killed when the test ends, and on Linux also when the test binary dies;
// a failed run prints the nodes' logs, and any process that ended
// without the test killing it is reported. The binary is built as
// scenario-node, not gslbd, so that stopping a gslbd by name elsewhere on
// the machine leaves the scenario alone.
package scenario
