// Package feast reads a Feast registry and translates it into a Quiver
// feature repository.
//
// Feast's `feast apply` with a file registry writes one serialized
// feast.core.Registry protobuf (feature_store.yaml's registry, often
// data/registry.db). The package works in two steps with a clear split:
//
//  1. Decode (decode.go) parses those bytes into plain Go structs
//     (Registry, Entity, DataSource, FeatureView, StreamFeatureView,
//     OnDemandFeatureView, FeatureService, Project), reading only the fields
//     the translation needs by their field numbers in Feast's published
//     .proto files, and skipping every other field. Bad input is an error
//     that names the object and the field, never a panic.
//  2. Translate (translate.go) maps a decoded project onto Quiver's
//     definition model and renders the files of a repository (quiver.yaml
//     and definition YAML under features/) together with a Report of what
//     mapped, what changed meaning on the way and what did not map, each
//     entry naming the Feast object. Python on-demand views cannot be
//     translated: each becomes a commented skeleton to port to CEL by hand.
//
// WriteFiles (write.go) puts the rendered files into a directory without
// overwriting what is there unless asked to.
//
// Everything here is a pure function of its inputs except WriteFiles and
// the optional file-system look-ups Translate makes through Options.Stat;
// values are not shared between calls and are safe to use from one
// goroutine at a time.
package feast
