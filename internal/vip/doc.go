// Package vip adds, removes and checks the virtual IP (virtual.ip) on a local interface, and announces it to the link.
package vip
