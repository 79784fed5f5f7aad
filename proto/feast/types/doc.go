// Package typespb holds Feast's value messages (package feast.types:
// Value, ValueType and the lists), written from Feast's published field
// numbers for Quiver's Feast-compatible serving. Value.pb.go is generated
// from Value.proto (make proto) and committed.
package typespb
