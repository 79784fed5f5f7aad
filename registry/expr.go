package registry

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/google/cel-go/cel"

	"github.com/quiverdata/quiver/internal/celenv"
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

// ExprObjects returns the objects an on-demand view's expressions read:
// each input view with its output features, then "request" with the
// request fields. Transform evaluation binds records in this order.
func ExprObjects(inputs []*FeatureView, request []*Field) []celenv.Object {
	var objs []celenv.Object
	for _, fv := range inputs {
		o := celenv.Object{Var: fv.Name}
		for _, f := range fv.OutputFeatures() {
			o.Fields = append(o.Fields, celenv.Field{Name: f.Name, Type: CELType(f.Type)})
		}
		objs = append(objs, o)
	}
	req := celenv.Object{Var: requestPrefix}
	for _, f := range request {
		req.Fields = append(req.Fields, celenv.Field{Name: f.Name, Type: CELType(f.Type)})
	}
	return append(objs, req)
}

// ExprEnv returns the CEL environment of an on-demand view's expressions.
func (d *Definitions) ExprEnv(od *OnDemandView) (*cel.Env, error) {
	var inputs []*FeatureView
	for _, name := range od.Inputs {
		if fv := d.FeatureView(name); fv != nil {
			inputs = append(inputs, fv)
		}
	}
	return celenv.New(ExprObjects(inputs, od.Request))
}

func newExprEnv(inputs []*FeatureView, request []*Field) (*exprEnv, error) {
	var names []string
	var valid []*Field
	for _, f := range request {
		if !f.Type.IsZero() && checkName(f.Name) == "" {
			valid = append(valid, f)
		}
	}
	objs := ExprObjects(inputs, valid)
	for _, o := range objs {
		for _, f := range o.Fields {
			names = append(names, o.Var+"."+f.Name)
		}
	}
	env, err := celenv.New(objs)
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
		for _, ce := range iss.Errors() {
			msg := strings.ReplaceAll(ce.Message, " (in container '')", "")
			switch {
			case strings.HasPrefix(msg, "undeclared reference"), strings.HasPrefix(msg, "undefined field"):
				msg = e.explainUndeclared(expr, msg)
			case strings.HasPrefix(msg, "found no matching overload") && strings.Contains(msg, "int") && strings.Contains(msg, "double"):
				msg += "; CEL does not mix int and double: convert one side with double(...) or int(...)"
			}
			msgs = append(msgs, fmt.Sprintf("%s (column %d)", msg, ce.Location.Column()+1))
		}
		return "does not compile: " + strings.Join(msgs, "; ")
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

var qualifiedRE = regexp.MustCompile(`\b([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\b`)

// explainUndeclared turns CEL's "undeclared reference to 'stats'" (which is
// what a misspelt stats.conv_rat produces) into the name that is missing.
func (e *exprEnv) explainUndeclared(expr, msg string) string {
	declared := map[string]bool{}
	for _, n := range e.names {
		declared[n] = true
	}
	for _, m := range qualifiedRE.FindAllStringSubmatch(expr, -1) {
		full := m[1] + "." + m[2]
		if declared[full] {
			continue
		}
		var siblings []string
		for _, n := range e.names {
			if strings.HasPrefix(n, m[1]+".") {
				siblings = append(siblings, n)
			}
		}
		if len(siblings) == 0 {
			continue
		}
		what := "an input feature"
		if m[1] == requestPrefix {
			what = "a declared request field"
		}
		return fmt.Sprintf("%s is not %s%s", full, what, didYouMean(full, siblings))
	}
	return msg + "; available: " + strings.Join(e.names, ", ")
}
