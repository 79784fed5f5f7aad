// Package value is Quiver's one value layer: the value types of features
// and fields (int32 … timestamp and list<T>), their Go representation, and
// the conversions every surface shares.
//
//   - types.go: Scalar and Type, parsing, typed Go lists (MakeList).
//   - coerce.go: what a Go value becomes for a type (Int, Float, FromInt,
//     FromFloat, Canon, Valid), with the range checks (an int32 out of
//     range, a float32 overflow) and their messages, for pushes, JSON
//     events, expression results and aggregation inputs alike.
//   - arrow.go: the Arrow type of each type (ArrowType), an Arrow cell as a
//     Go value (FromArrow) and a Go value into a builder (AppendArrow).
//   - row.go: the byte format of stored rows: the header every row starts
//     with, and Append, Read and Skip of one typed value. Online rows
//     (package online) and aggregation tiles (package aggregate) are built
//     from them; the format never changes, since stores keep old rows.
//
// The canonical Go value of a type is int32, int64, float32, float64,
// bool, string, []byte, time.Time (UTC, whole microseconds), or for a list
// the typed slice MakeList returns. Read, Canon and FromMicros return
// canonical values; Append, Canon and AppendArrow take them, and Append
// and Canon take any Go value that holds the type without loss.
//
// Everything here is a pure function, safe for concurrent use. Values
// returned never alias their input: Read and FromArrow copy bytes and
// strings out of the buffers they read.
//
// It depends on nothing in Quiver but internal/text, and on no cgo (Arrow
// is pure Go), so the Go client (package sdk) can use it.
package value
