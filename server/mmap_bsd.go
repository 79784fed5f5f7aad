//go:build unix && !linux

package server

// mapPopulate: other systems fault the mapping in as it is read.
const mapPopulate = 0
