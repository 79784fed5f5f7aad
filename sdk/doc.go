// Package sdk is Quiver's Go client: online lookups, push, and training
// sets over Arrow Flight.
package sdk
