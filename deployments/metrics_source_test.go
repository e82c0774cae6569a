package deployments

// The series the enricher exports, read from its source (enricher/metrics.go)
// rather than from a list kept here, so that a renamed metric or label
// fails the manifest test instead of leaving the autoscaler reading
// nothing. The compose end-to-end test scrapes the same series from a
// running enricher.

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// series is one Prometheus series family as the OTel Prometheus exporter
// names it, with the attribute keys (labels) and the constant values the
// source gives them.
type series struct {
	kind   string              // "gauge" or "counter"
	labels map[string][]string // label → constant values seen ("" when not a constant)
}

// promName is the OTel Prometheus exporter's name for an instrument
// without a unit: dots become underscores, counters get _total.
func promName(otel, kind string) string {
	n := strings.ReplaceAll(otel, ".", "_")
	if kind == "counter" {
		n += "_total"
	}
	return n
}

// enricherSeries parses enricher/metrics.go: the instruments created by its
// counter/gauge helpers or meter.Int64Observable*, and the attribute keys
// of every ObserveInt64 on them (inline attribute.String(key, value)
// calls; values that are string constants or bus.Stream* constants are
// resolved).
func enricherSeries(t *testing.T) map[string]*series {
	t.Helper()
	root := repoRoot(t)
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(root, "enricher", "metrics.go"), nil, 0)
	if err != nil {
		t.Fatalf("enricher/metrics.go: %v", err)
	}
	busConsts := stringConsts(t, filepath.Join(root, "services", "bus", "bus.go"))
	strLit := func(e ast.Expr) (string, bool) {
		switch v := e.(type) {
		case *ast.BasicLit:
			if v.Kind == token.STRING {
				s, err := strconv.Unquote(v.Value)
				return s, err == nil
			}
		case *ast.SelectorExpr:
			if x, ok := v.X.(*ast.Ident); ok && x.Name == "bus" {
				s, ok := busConsts[v.Sel.Name]
				return s, ok
			}
		}
		return "", false
	}
	byVar := map[string]*series{}
	out := map[string]*series{}
	ast.Inspect(f, func(n ast.Node) bool {
		switch v := n.(type) {
		case *ast.CallExpr:
			name, args := callName(v), v.Args
			var kind, varName, otel string
			switch {
			case (name == "counter" || name == "gauge") && len(args) >= 2:
				if u, ok := args[0].(*ast.UnaryExpr); ok {
					if id, ok := u.X.(*ast.Ident); ok {
						varName = id.Name
					}
				}
				otel, _ = strLit(args[1])
				kind = name
			case name == "ObserveInt64" && len(args) >= 2:
				id, ok := args[0].(*ast.Ident)
				if !ok || byVar[id.Name] == nil {
					return true
				}
				s := byVar[id.Name]
				for _, a := range args[2:] {
					ast.Inspect(a, func(m ast.Node) bool {
						c, ok := m.(*ast.CallExpr)
						if !ok || callName(c) != "String" || len(c.Args) != 2 {
							return true
						}
						if k, ok := strLit(c.Args[0]); ok {
							val, _ := strLit(c.Args[1])
							s.labels[k] = append(s.labels[k], val)
						}
						return true
					})
				}
				return true
			}
			if kind != "" && varName != "" && otel != "" {
				s := &series{kind: kind, labels: map[string][]string{}}
				byVar[varName], out[promName(otel, kind)] = s, s
			}
		case *ast.AssignStmt:
			// limits, err = meter.Int64ObservableGauge("name", ...)
			if len(v.Lhs) >= 1 && len(v.Rhs) == 1 {
				c, ok := v.Rhs[0].(*ast.CallExpr)
				id, ok2 := v.Lhs[0].(*ast.Ident)
				if !ok || !ok2 || len(c.Args) == 0 {
					return true
				}
				kind := map[string]string{"Int64ObservableGauge": "gauge", "Int64ObservableCounter": "counter"}[callName(c)]
				if otel, ok := strLit(c.Args[0]); ok && kind != "" {
					s := &series{kind: kind, labels: map[string][]string{}}
					byVar[id.Name], out[promName(otel, kind)] = s, s
				}
			}
		}
		return true
	})
	if len(out) < 10 {
		t.Fatalf("enricher/metrics.go: found only %d instruments (%v): has its registration changed shape?", len(out), out)
	}
	return out
}

func callName(c *ast.CallExpr) string {
	switch f := c.Fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}

// stringConsts returns the string constants declared in a Go file.
func stringConsts(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, sp := range g.Specs {
			vs := sp.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if i < len(vs.Values) {
					if l, ok := vs.Values[i].(*ast.BasicLit); ok && l.Kind == token.STRING {
						out[n.Name], _ = strconv.Unquote(l.Value)
					}
				}
			}
		}
	}
	return out
}
