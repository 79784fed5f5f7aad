// Package lint holds no code, only tests that keep Quiver's layering as
// docs/development.md describes it: which packages may import which, that
// the Go client (package sdk) stays small and pure Go, that nothing
// imports the examples, and that every package has one package comment.
//
// The rules are a table in lint_test.go: a new rule is one entry. Each
// failure names the rule and the import chain that breaks it.
package lint
