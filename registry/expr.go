package registry

import (
	"fmt"
	"sort"
	"strings"

	"github.com/google/cel-go/cel"
)

// exprEnv type-checks on-demand expressions. Each input view's feature is
// a variable named view.feature, each request field request.field, typed
// after the feature's value type.
type exprEnv struct {
	env   *cel.Env
	names []string
}

// CELType returns the CEL type that carries values of t: integers are int,
// floats double, timestamps google.protobuf.Timestamp, lists list(T).
func CELType(t ValueType) *cel.Type {
	var elem *cel.Type
	switch t.Elem {
	case Int32, Int64:
		elem = cel.IntType
	case Float32, Float64:
		elem = cel.DoubleType
	case Bool:
		elem = cel.BoolType
	case String:
		elem = cel.StringType
	case Bytes:
		elem = cel.BytesType
	case Timestamp:
		elem = cel.TimestampType
	default:
		elem = cel.DynType
	}
	if t.List {
		return cel.ListType(elem)
	}
	return elem
}

func newExprEnv(inputs []*FeatureView, request []*Field) (*exprEnv, error) {
	var opts []cel.EnvOption
	var names []string
	for _, fv := range inputs {
		for _, f := range fv.OutputFeatures() {
			if f.Type.IsZero() {
				continue
			}
			n := fv.Name + "." + f.Name
			opts = append(opts, cel.Variable(n, CELType(f.Type)))
			names = append(names, n)
		}
	}
	for _, f := range request {
		if f.Type.IsZero() || checkName(f.Name) != "" {
			continue
		}
		n := requestPrefix + "." + f.Name
		opts = append(opts, cel.Variable(n, CELType(f.Type)))
		names = append(names, n)
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return &exprEnv{env: env, names: names}, nil
}

// check compiles expr and returns why it does not compute a want, or "".
func (e *exprEnv) check(expr string, want ValueType) string {
	ast, iss := e.env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		var msgs []string
		undeclared := false
		for _, ce := range iss.Errors() {
			loc := ce.Location
			msgs = append(msgs, fmt.Sprintf("%s (column %d)", ce.Message, loc.Column()+1))
			undeclared = undeclared || strings.Contains(ce.Message, "undeclared reference")
		}
		msg := "does not compile: " + strings.Join(msgs, "; ")
		if undeclared {
			msg += "; available: " + strings.Join(e.names, ", ")
		}
		return msg
	}
	got := ast.OutputType()
	wantCEL := CELType(want)
	if got.IsExactType(wantCEL) || got.IsExactType(cel.DynType) {
		return ""
	}
	hint := ""
	switch {
	case wantCEL.IsExactType(cel.DoubleType) && got.IsExactType(cel.IntType):
		hint = " (wrap it in double(...))"
	case wantCEL.IsExactType(cel.IntType) && got.IsExactType(cel.DoubleType):
		hint = " (wrap it in int(...))"
	case wantCEL.IsExactType(cel.StringType):
		hint = " (wrap it in string(...))"
	}
	return fmt.Sprintf("computes %s, but the feature is declared %s%s", celTypeName(got), want, hint)
}

func celTypeName(t *cel.Type) string {
	s := t.String()
	switch s {
	case "int":
		return "int (int64)"
	case "double":
		return "double (float64)"
	}
	return s
}
