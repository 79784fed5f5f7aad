// Package transform evaluates on-demand feature expressions (CEL) over
// single rows and over Arrow batches, so that serving and training compute
// the same values. Expressions are type-checked when definitions load (see
// registry); this package compiles and runs them.
package transform
