// Package transform compiles on-demand views' CEL expressions and
// evaluates them, row by row for online lookups and batch by batch over
// Arrow for training sets. Both paths run the same compiled program on the
// same CEL values, so serving and training compute the same thing.
//
// Usage: Compile (or a Cache, which compiles once per registry version)
// gives a Set; Set.View gives a compiled on-demand view; View.NewEvaluator
// gives an Evaluator, into which a caller sets each row's inputs and
// request fields and then evaluates features. A Set and its Views are
// immutable and safe for concurrent use; an Evaluator belongs to one
// goroutine.
//
// Nulls: an input that is null (the caller gives a non-zero code, such as
// the online lookup's status) makes a feature null with that code when the
// expression reads it directly. An expression that tests has(view.feature)
// or uses optional syntax (view.?feature.orValue(x)) handles the null
// itself. A runtime failure (division by zero, overflow, a value out of
// the declared type's range) makes the feature null with an error; it never
// fails the other features.
//
// Expressions are type-checked when definitions load (see registry); this
// package compiles and runs them.
package transform
