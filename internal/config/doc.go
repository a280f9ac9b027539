// Package config reads a cluster's CLUSTER.properties and CLUSTER.nodes files, keeping EFM's property names, and turns them into a validated runtime Config.
package config
