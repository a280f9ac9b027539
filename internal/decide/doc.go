// Package decide is the coordinator's failover policy: Step turns a snapshot
// of the cluster into a plan of actions.
//
// It is pure on purpose: no I/O, no clock (now is a parameter), no
// goroutines and no randomness. The same View, Memory and time always give
// the same Plan, so every failure scenario is a table row in a unit test,
// and the agent that executes the plan owns every side effect.
package decide
