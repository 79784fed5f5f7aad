//go:build unix && !linux

package mmapfile

// mapPopulate: other systems fault the mapping in as it is read.
const mapPopulate = 0
