package transform

import (
	"fmt"
	"sort"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/interpreter"

	"github.com/quiverdata/quiver/internal/celenv"
	"github.com/quiverdata/quiver/internal/recent"
	"github.com/quiverdata/quiver/registry"
)

// Set is one registry version's compiled on-demand views.
type Set struct {
	defs  *registry.Definitions
	views map[string]*View
}

// Compile compiles every on-demand view of defs.
func Compile(defs *registry.Definitions) (*Set, error) {
	s := &Set{defs: defs, views: make(map[string]*View, len(defs.OnDemandViews))}
	for _, od := range defs.OnDemandViews {
		v, err := compileView(defs, od)
		if err != nil {
			return nil, err
		}
		s.views[od.Name] = v
	}
	return s, nil
}

// View returns the compiled on-demand view named name, or nil.
func (s *Set) View(name string) *View { return s.views[name] }

// Cache holds the compiled Sets of the last few definitions it was asked
// for (recent.Size), so that requests with an old and a new registry
// version, which alternate during a reload, compile nothing. It is safe
// for concurrent use.
type Cache struct {
	sets recent.Cache[*registry.Definitions, *Set]
}

// Get returns defs' compiled Set, compiling it on first use.
func (c *Cache) Get(defs *registry.Definitions) (*Set, error) {
	return c.sets.Get(defs, func() (*Set, error) { return Compile(defs) })
}

// Compiles is how many times the cache has compiled definitions.
func (c *Cache) Compiles() int64 { return c.sets.Builds() }

// Input is an input view's feature that the view's expressions read.
type Input struct {
	View    string
	Feature string
	Type    registry.ValueType
	obj     int // index in View.objects
	field   int // index in the object's fields
}

// Ref is the input as a feature reference, view:feature.
func (in Input) Ref() string { return in.View + ":" + in.Feature }

// Feature is a compiled on-demand feature.
type Feature struct {
	Name string
	Type registry.ValueType
	Expr string
	prg  cel.Program
}

// View is a compiled on-demand view.
type View struct {
	Def *registry.OnDemandView
	// Inputs are the input features any expression reads, in input-view
	// then feature order.
	Inputs []Input
	// Request are the view's declared request fields; every one must be
	// given.
	Request  []*registry.Field
	Features []*Feature
	objects  []celenv.Object
}

func compileView(defs *registry.Definitions, od *registry.OnDemandView) (*View, error) {
	env, err := defs.ExprEnv(od)
	if err != nil {
		return nil, fmt.Errorf("on-demand view %s: %w", od.Name, err)
	}
	var inputs []*registry.FeatureView
	for _, name := range od.Inputs {
		fv := defs.FeatureView(name)
		if fv == nil {
			return nil, fmt.Errorf("on-demand view %s: unknown input view %q", od.Name, name)
		}
		inputs = append(inputs, fv)
	}
	v := &View{Def: od, Request: od.Request, objects: registry.ExprObjects(inputs, od.Request)}
	read := map[[2]string]bool{}
	for _, f := range od.Features {
		checked, iss := env.Compile(f.Expr)
		if iss != nil && iss.Err() != nil {
			return nil, fmt.Errorf("on-demand feature %s:%s: %w", od.Name, f.Name, iss.Err())
		}
		prg, err := env.Program(checked, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			return nil, fmt.Errorf("on-demand feature %s:%s: %w", od.Name, f.Name, err)
		}
		v.Features = append(v.Features, &Feature{Name: f.Name, Type: f.Type, Expr: f.Expr, prg: prg})
		for _, r := range selects(checked.NativeRep().Expr()) {
			read[r] = true
		}
	}
	for oi, o := range v.objects[:len(inputs)] {
		for fi, f := range o.Fields {
			if read[[2]string{o.Var, f.Name}] {
				v.Inputs = append(v.Inputs, Input{View: o.Var, Feature: f.Name, Type: inputs[oi].OutputFeatures()[fi].Type, obj: oi, field: fi})
			}
		}
	}
	return v, nil
}

// selects returns the (variable, field) pairs an expression reads: plain
// selections, has() tests and optional selections (_?._).
func selects(e ast.Expr) [][2]string {
	var out [][2]string
	ast.PostOrderVisit(e, ast.NewExprVisitor(func(e ast.Expr) {
		switch e.Kind() {
		case ast.SelectKind:
			sel := e.AsSelect()
			if op := sel.Operand(); op.Kind() == ast.IdentKind {
				out = append(out, [2]string{op.AsIdent(), sel.FieldName()})
			}
		case ast.CallKind:
			call := e.AsCall()
			args := call.Args()
			if call.FunctionName() == "_?._" && len(args) == 2 && args[0].Kind() == ast.IdentKind && args[1].Kind() == ast.LiteralKind {
				if name, ok := args[1].AsLiteral().Value().(string); ok {
					out = append(out, [2]string{args[0].AsIdent(), name})
				}
			}
		}
	}))
	sort.Slice(out, func(i, j int) bool { return out[i][0]+"."+out[i][1] < out[j][0]+"."+out[j][1] })
	return out
}

// Result is one evaluated feature value.
type Result struct {
	// Value is the typed Go value (int32, int64, float32, float64, bool,
	// string, []byte, time.Time, or a typed slice for lists); nil when
	// the feature is null.
	Value any
	// Null is the code of the null input the expression read, or 0.
	Null uint8
	// Err is the runtime failure, or nil.
	Err error
}

// Evaluator evaluates a view's features over one row at a time. Set
// every input and request field of the row, then call Eval.
type Evaluator struct {
	view    *View
	records []*celenv.Record
	miss    celenv.Miss
	act     activation
}

// NewEvaluator returns an evaluator for the view. Inputs and request
// fields start null with code 1 until set.
func (v *View) NewEvaluator() *Evaluator {
	e := &Evaluator{view: v}
	e.act.names = make(map[string]*celenv.Record, len(v.objects))
	for _, o := range v.objects {
		r := celenv.NewRecord(o, &e.miss)
		e.records = append(e.records, r)
		e.act.names[o.Var] = r
	}
	return e
}

// SetInput sets input i (an index in View.Inputs) to a Go value of the
// input's type; nil makes it null with code 1.
func (e *Evaluator) SetInput(i int, v any) error {
	in := e.view.Inputs[i]
	r := e.records[in.obj]
	if v == nil {
		r.SetNull(in.field, 1)
		return nil
	}
	cv, err := ToCEL(in.Type, v)
	if err != nil {
		return fmt.Errorf("input %s: %w", in.Ref(), err)
	}
	r.Set(in.field, cv)
	return nil
}

// SetInputNull makes input i null with code (not zero).
func (e *Evaluator) SetInputNull(i int, code uint8) {
	in := e.view.Inputs[i]
	e.records[in.obj].SetNull(in.field, code)
}

// SetRequest sets request field i (an index in View.Request) to a Go
// value of the field's type; nil makes it null with code 1.
func (e *Evaluator) SetRequest(i int, v any) error {
	r := e.records[len(e.records)-1]
	if v == nil {
		r.SetNull(i, 1)
		return nil
	}
	cv, err := ToCEL(e.view.Request[i].Type, v)
	if err != nil {
		return err
	}
	r.Set(i, cv)
	return nil
}

// Eval evaluates feature f (an index in View.Features) over the row set.
func (e *Evaluator) Eval(f int) Result {
	feat := e.view.Features[f]
	e.miss.Reset()
	out, _, err := feat.prg.Eval(&e.act)
	if e.miss.Hit() && (err != nil || out == nil) {
		return Result{Null: e.miss.Code}
	}
	if err != nil {
		return Result{Err: fmt.Errorf("%s:%s: %w", e.view.Def.Name, feat.Name, err)}
	}
	v, err := FromCEL(feat.Type, out)
	if err != nil {
		return Result{Err: fmt.Errorf("%s:%s: %w", e.view.Def.Name, feat.Name, err)}
	}
	return Result{Value: v}
}

// activation binds each object's variable to its record.
type activation struct {
	names map[string]*celenv.Record
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) ResolveName(name string) (any, bool) {
	r, ok := a.names[name]
	return r, ok
}

func (a *activation) Parent() interpreter.Activation { return nil }
