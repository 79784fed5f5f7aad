package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

const (
	alertsFile    = "prometheus/alerts.yaml"
	dashboardFile = "grafana/quiver.json"
	metricsFile   = "metrics.txt"
	// The runbooks: one section per alert in docs/operations.md.
	runbookDocs = "../docs/operations.md"
	runbookURL  = "https://github.com/quiverdata/quiver/blob/main/docs/operations.md#"
)

// promql parses expressions as Prometheus does by default.
var promql = parser.NewParser(parser.Options{})

// readMetrics reads deploy/metrics.txt: a metric name and its type a line,
// written by go test ./cmd/quiver -run TestMetricsList -update.
func readMetrics(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(metricsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, typ, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("%s: %q is not NAME TYPE", metricsFile, sc.Text())
		}
		out[name] = typ
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s is empty", metricsFile)
	}
	return out
}

// checker finds the metric names of PromQL expressions and reports those
// that Quiver does not export.
type checker struct {
	known map[string]string // name → type, from metrics.txt
	used  map[string]bool   // base names the expressions use
}

// unknownMetrics parses expr and returns the problems: a parse error, a
// selector without a metric name, a name Quiver does not export (up, the
// scrape's own series, aside), or a histogram suffix on a metric that is
// not a histogram.
func (c *checker) unknownMetrics(expr string) []string {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return []string{fmt.Sprintf("parse %q: %v", expr, err)}
	}
	var problems []string
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
		}
		if name == "" {
			problems = append(problems, fmt.Sprintf("%s: a selector without a metric name", vs))
			return nil
		}
		if base, ok := c.base(name); ok {
			c.used[base] = true
			return nil
		}
		problems = append(problems, fmt.Sprintf("%s: Quiver exports no metric %s (%s)", expr, name, metricsFile))
		return nil
	})
	return problems
}

// base maps a series name to the metric it belongs to: histograms'
// _bucket, _sum and _count series to the histogram, summaries' _sum and
// _count to the summary.
func (c *checker) base(name string) (string, bool) {
	if name == "up" {
		return name, true
	}
	if _, ok := c.known[name]; ok {
		return name, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		b, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		switch c.known[b] {
		case "histogram":
			return b, true
		case "summary":
			if suffix != "_bucket" {
				return b, true
			}
		}
	}
	return "", false
}

// headings returns the GitHub anchors of the Markdown headings in the
// files that exist.
func headings(t *testing.T, files ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			if strings.HasPrefix(line, "#") {
				out[anchor(strings.TrimLeft(line, "#"))] = true
			}
		}
	}
	return out
}

var anchorDrop = regexp.MustCompile(`[^\p{L}\p{N}\- _]`)

// anchor is GitHub's anchor of a heading: lower case, punctuation
// dropped, spaces to hyphens.
func anchor(heading string) string {
	s := strings.ToLower(strings.TrimSpace(heading))
	s = anchorDrop.ReplaceAllString(s, "")
	return strings.ReplaceAll(s, " ", "-")
}

// checkRules parses a rule file as Prometheus does and checks every
// alert: its metrics, its labels and annotations, its runbook.
func (c *checker) checkRules(content []byte, anchors map[string]bool) (alerts []string, problems []string) {
	groups, errs := rulefmt.Parse(content, false, model.UTF8Validation, promql, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		problems = append(problems, err.Error())
	}
	if groups == nil {
		return nil, problems
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			problems = append(problems, c.unknownMetrics(r.Expr)...)
			if r.Alert == "" {
				continue
			}
			if slices.Contains(alerts, r.Alert) {
				problems = append(problems, fmt.Sprintf("alert %s is defined twice", r.Alert))
			}
			alerts = append(alerts, r.Alert)
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				problems = append(problems, fmt.Sprintf("alert %s: severity %q, want critical or warning", r.Alert, s))
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					problems = append(problems, fmt.Sprintf("alert %s has no %s annotation", r.Alert, a))
				}
			}
			u := r.Annotations["runbook_url"]
			frag, ok := strings.CutPrefix(u, runbookURL)
			switch {
			case u == "":
			case !ok:
				problems = append(problems, fmt.Sprintf("alert %s: runbook_url %s is not a section of %s", r.Alert, u, runbookURL))
			case frag != anchor(r.Alert):
				problems = append(problems, fmt.Sprintf("alert %s: runbook_url anchor #%s, want #%s, its own section", r.Alert, frag, anchor(r.Alert)))
			case !anchors[frag]:
				problems = append(problems, fmt.Sprintf("alert %s: no heading for #%s in %s", r.Alert, frag, runbookDocs))
			}
			if _, err := url.Parse(u); err != nil {
				problems = append(problems, fmt.Sprintf("alert %s: runbook_url: %v", r.Alert, err))
			}
		}
	}
	return alerts, problems
}

// grafanaVars are Grafana's variables as they appear in the dashboard's
// queries, and what stands in for them when the query is parsed.
var grafanaVars = regexp.MustCompile(`\$\{?(__rate_interval|__interval|__range|[A-Za-z_][A-Za-z0-9_]*)(:[a-z]+)?\}?`)

func grafanaToPromQL(expr string) string {
	return grafanaVars.ReplaceAllStringFunc(expr, func(v string) string {
		switch name := grafanaVars.FindStringSubmatch(v)[1]; name {
		case "__rate_interval", "__interval", "__range":
			return "5m"
		default:
			return "x" // label values: inside quoted matchers
		}
	})
}

// dashboard is the part of a Grafana dashboard these tests read.
type dashboard struct {
	SchemaVersion int     `json:"schemaVersion"`
	UID           string  `json:"uid"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []templateVar `json:"list"`
	} `json:"templating"`
}

type templateVar struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type panel struct {
	ID         int             `json:"id"`
	Title      string          `json:"title"`
	Type       string          `json:"type"`
	Datasource json.RawMessage `json:"datasource"`
	Panels     []panel         `json:"panels"`
	Targets    []struct {
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
}

// checkDashboard checks every panel query's metrics, and that the panels
// query the data source variable.
func (c *checker) checkDashboard(data []byte) (panels int, problems []string) {
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return 0, []string{err.Error()}
	}
	if d.SchemaVersion < 39 {
		problems = append(problems, fmt.Sprintf("schemaVersion %d, want 39 or later", d.SchemaVersion))
	}
	if d.UID == "" {
		problems = append(problems, "no uid: links to the dashboard would break on every import")
	}
	if !slices.ContainsFunc(d.Templating.List, func(v templateVar) bool { return v.Name == "datasource" && v.Type == "datasource" }) {
		problems = append(problems, "no datasource template variable")
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				problems = append(problems, fmt.Sprintf("panel id %d is used twice", p.ID))
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			panels++
			if !strings.Contains(string(p.Datasource), "${datasource}") {
				problems = append(problems, fmt.Sprintf("panel %q: data source %s, want ${datasource}", p.Title, p.Datasource))
			}
			if len(p.Targets) == 0 {
				problems = append(problems, fmt.Sprintf("panel %q has no query", p.Title))
			}
			for _, tg := range p.Targets {
				for _, pr := range c.unknownMetrics(grafanaToPromQL(tg.Expr)) {
					problems = append(problems, fmt.Sprintf("panel %q: %s", p.Title, pr))
				}
			}
		}
	}
	walk(d.Panels)
	return panels, problems
}

func newChecker(t *testing.T) *checker {
	return &checker{known: readMetrics(t), used: map[string]bool{}}
}

func TestAlerts(t *testing.T) {
	c := newChecker(t)
	data, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors := headings(t, runbookDocs)
	alerts, problems := c.checkRules(data, anchors)
	for _, p := range problems {
		t.Error(p)
	}
	// What the alerts must cover.
	for _, m := range []string{"up", "quiver_stream_freshness_seconds", "quiver_stream_consumer_lag", "quiver_stream_dead_letters_total",
		"quiver_stream_partition_stalled", "quiver_request_duration_seconds", "quiver_online_store_duration_seconds"} {
		if !c.used[m] {
			t.Errorf("no alert uses %s", m)
		}
	}
	// Every alert has its runbook, and every runbook its alert.
	docs := headings(t, runbookDocs)
	for a := range docs {
		if strings.HasPrefix(a, "quiver") && !slices.ContainsFunc(alerts, func(x string) bool { return anchor(x) == a }) {
			t.Errorf("%s has a section #%s for an alert that %s does not define", runbookDocs, a, alertsFile)
		}
	}
	if len(alerts) < 8 {
		t.Errorf("%d alerts", len(alerts))
	}
}

func TestDashboard(t *testing.T) {
	c := newChecker(t)
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	panels, problems := c.checkDashboard(data)
	for _, p := range problems {
		t.Error(p)
	}
	if panels < 10 {
		t.Errorf("%d panels", panels)
	}
	for _, m := range []string{"quiver_request_duration_seconds", "quiver_online_store_duration_seconds", "quiver_stream_events_total",
		"quiver_stream_consumer_lag", "quiver_stream_freshness_seconds", "quiver_stream_dead_letters_total", "quiver_stream_partition_stalled",
		"quiver_stream_retries_total", "quiver_stream_commits_total", "go_memstats_heap_inuse_bytes", "go_gc_duration_seconds"} {
		if !c.used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

// TestCheckers shows that the checks report what they are for, so that
// they cannot pass by checking nothing.
func TestCheckers(t *testing.T) {
	c := newChecker(t)
	anchors := map[string]bool{"quiverok": true}
	rule := func(alert, expr, runbook string) []byte {
		return fmt.Appendf(nil, `groups:
  - name: g
    rules:
      - alert: %s
        expr: |
          %s
        labels: {severity: warning}
        annotations: {summary: s, description: d, runbook_url: "%s"}
`, alert, expr, runbook)
	}
	for _, tc := range []struct {
		name string
		rule []byte
		want string // "" for no problem
	}{
		{"known", rule("QuiverOK", "rate(quiver_stream_events_total[5m]) > 0", runbookURL+"quiverok"), ""},
		{"histogram series", rule("QuiverOK", "histogram_quantile(0.99, rate(quiver_request_duration_seconds_bucket[5m])) > 1", runbookURL+"quiverok"), ""},
		{"by __name__", rule("QuiverOK", `{__name__="quiver_stream_consumer_lag"} > 1`, runbookURL+"quiverok"), ""},
		{"unknown metric", rule("QuiverOK", "rate(quiver_stream_event_total[5m]) > 0", runbookURL+"quiverok"), "exports no metric quiver_stream_event_total"},
		{"suffix of a counter", rule("QuiverOK", "quiver_stream_events_total_count > 0", runbookURL+"quiverok"), "exports no metric quiver_stream_events_total_count"},
		{"bad PromQL", rule("QuiverOK", "rate(quiver_stream_events_total) > 0", runbookURL+"quiverok"), "expected type range vector"},
		{"no section", rule("QuiverMissing", "up == 0", runbookURL+"quivermissing"), "no heading for #quivermissing"},
		{"another section", rule("QuiverMissing", "up == 0", runbookURL+"quiverok"), "want #quivermissing"},
		{"unknown field", []byte("groups:\n  - name: g\n    rules:\n      - alert: QuiverOK\n        expr: up == 0\n        severity: warning\n"), "field severity not found"},
	} {
		_, problems := c.checkRules(tc.rule, anchors)
		got := strings.Join(problems, "\n")
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: problems %q, want %q", tc.name, got, tc.want)
		}
	}

	dash := func(expr string) []byte {
		b, _ := json.Marshal(map[string]any{
			"schemaVersion": 39, "uid": "u",
			"templating": map[string]any{"list": []any{map[string]any{"name": "datasource", "type": "datasource"}}},
			"panels": []any{map[string]any{"id": 1, "type": "timeseries", "title": "p", "datasource": map[string]string{"uid": "${datasource}"},
				"targets": []any{map[string]string{"expr": expr}}}},
		})
		return b
	}
	if _, problems := c.checkDashboard(dash(`sum(rate(quiver_stream_events_total{namespace=~"$namespace"}[$__rate_interval]))`)); len(problems) != 0 {
		t.Errorf("a good panel: %v", problems)
	}
	if _, problems := c.checkDashboard(dash(`sum(rate(quiver_no_such_metric[$__rate_interval]))`)); !strings.Contains(strings.Join(problems, "\n"), "exports no metric quiver_no_such_metric") {
		t.Errorf("a panel with an unknown metric: %v", problems)
	}
	if got := anchor("QuiverStreamPartitionStalled"); got != "quiverstreampartitionstalled" {
		t.Errorf("anchor: %s", got)
	}
	if got := anchor("Rolling restarts (serve)"); got != "rolling-restarts-serve" {
		t.Errorf("anchor: %s", got)
	}
}
