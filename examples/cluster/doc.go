// Package cluster holds tests that run Blixard peers as Docker containers
// on a private network and break them: they kill, pause, cut off and
// restart peers, and check from every surviving peer that each accepted
// job ends in exactly one terminal record. The package has no code of its
// own; see README.md for the lab of three peers to try by hand.
package cluster
