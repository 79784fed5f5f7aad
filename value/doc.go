// Package value is Quiver's one value layer: the value types of features
// and fields (int32 … timestamp and list<T>), their Go representation, and
// the conversions every surface shares.
//
// It depends on nothing in Quiver but internal/text, and on no cgo, so the
// Go client (package sdk) can use it.
package value
