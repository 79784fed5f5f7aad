package registry

import (
	"encoding/json"
	"fmt"

	"gopkg.in/yaml.v3"
)

// ToYAML renders an object as block YAML in its stored form: fields in
// declaration order, empty ones left out, derived ones (such as an
// aggregation's output type) included.
func ToYAML(o Object) ([]byte, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", o.ObjectKind(), o.ObjectName(), err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil { // JSON is YAML; key order is kept
		return nil, fmt.Errorf("render %s %s: %w", o.ObjectKind(), o.ObjectName(), err)
	}
	blockStyle(&n)
	return yaml.Marshal(&n)
}

func blockStyle(n *yaml.Node) {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		n.Style = 0
	}
	if n.Kind == yaml.ScalarNode && n.Style == yaml.DoubleQuotedStyle {
		n.Style = 0 // the encoder quotes where YAML needs it
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}
