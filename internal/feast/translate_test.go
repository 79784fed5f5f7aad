package feast

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// fixture is the registry feast apply wrote for testdata/make_registry.py.
func fixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "registry.db"))
	require.NoError(t, err)
	return b
}

// goldenOptions place the Feast repository and the output at fixed paths,
// so that data_root and source paths are the same on every machine.
var goldenOptions = Options{FeastRepo: "/feast/rides", OutDir: "/quiver/rides"}

func translateFixture(t *testing.T, opts Options) *Result {
	t.Helper()
	reg, err := Decode(fixture(t))
	require.NoError(t, err)
	res, err := Translate(reg, opts)
	require.NoError(t, err)
	return res
}

func TestGolden(t *testing.T) {
	res := translateFixture(t, goldenOptions)
	var report bytes.Buffer
	require.NoError(t, res.Report.Write(&report))
	got := map[string][]byte{"report.txt": report.Bytes()}
	for _, f := range res.Files {
		got[f.Path] = f.Data
	}
	dir := filepath.Join("testdata", "golden")
	if *update {
		require.NoError(t, os.RemoveAll(dir))
		for p, data := range got {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, p), data, 0o644))
		}
	}
	want := map[string][]byte{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		want[filepath.ToSlash(rel)] = b
		return err
	}))
	require.Equal(t, keys(want), keys(got), "files (run go test -run TestGolden -update to accept)")
	for p := range want {
		require.Equal(t, string(want[p]), string(got[p]), "%s differs (run go test -run TestGolden -update to accept)", p)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return sortedStrings(out)
}

func sortedStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// TestImportedRepositoryValidates writes the translation and loads it with
// package registry, as quiver validate does.
func TestImportedRepositoryValidates(t *testing.T) {
	out := t.TempDir()
	opts := goldenOptions
	opts.OutDir = out
	res := translateFixture(t, opts)
	require.NoError(t, WriteFiles(out, res.Files, false))
	repo, err := registry.LoadRepo(out, registry.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	require.NoError(t, err)
	d := repo.Defs
	require.Equal(t, "rides", d.Project)
	require.Len(t, d.Entities, 2)
	require.Equal(t, res.FeatureViews, len(d.FeatureViews))
	require.Len(t, d.FeatureServices, 2)

	hourly := d.FeatureView("driver_hourly")
	require.NotNil(t, hourly)
	require.Equal(t, "48h0m0s", hourly.TTL.Std().String())
	require.Equal(t, "mobility@example.com", hourly.Owner)
	require.Equal(t, map[string]string{"team": "mobility", "tier": "1"}, hourly.Tags)
	require.Equal(t, "list<float32>", hourly.Features[3].Type.String())

	lifetime := d.FeatureView("driver_lifetime")
	require.NotNil(t, lifetime)
	require.Zero(t, lifetime.TTL, "Feast's ttl 0 is Quiver's unbounded ttl")
	require.False(t, lifetime.IsOnline())

	src := d.Source("driver_stats")
	require.NotNil(t, src)
	require.Equal(t, "created", src.CreatedTimestampField)
	require.Equal(t, map[string]string{"conversion_rate": "conv_rate"}, src.FieldMapping)
	require.Equal(t, "/feast/rides/data/driver_stats.parquet", filepath.Join(repo.Config.DataRoot(), src.Path),
		"the relative Feast path resolves against the Feast repository")

	trips := d.FeatureView("driver_trips")
	require.NotNil(t, trips)
	var aggs []string
	for _, a := range trips.Aggregations {
		aggs = append(aggs, a.Name+"="+a.Function+"("+a.Column+","+a.Window.String()+")")
	}
	require.Equal(t, []string{"sum_fare_3600s=sum(fare,1h)", "count_fare_86400s=count(fare,24h)",
		"mean_fare_3600s=avg(fare,1h)", "max_fare_7200s=max(fare,2h)"}, aggs)
	kafka := d.Source(trips.Source)
	require.Equal(t, registry.SourceKafka, kafka.Kind)
	require.Equal(t, []string{"broker-1:9092", "broker-2:9092"}, kafka.Brokers)
	require.Equal(t, "trips", kafka.Topic)

	require.Equal(t, []string{"driver_hourly:conv_rate", "driver_hourly:acc_rate", "driver_trips:*"}, d.FeatureService("ranking_v1").Features)
	require.Equal(t, []string{"driver_hourly:*", "rider_profile:*"}, d.FeatureService("ranking_v2").Features)
	require.Empty(t, d.OnDemandViews, "the Python on-demand view is left commented out")

	// The commented skeleton, uncommented, is a valid on-demand view whose
	// placeholder expressions are there to be replaced.
	od := string(fileOf(t, res, FileOnDemand))
	i := strings.Index(od, "# on_demand_feature_views:")
	require.Positive(t, i)
	var b strings.Builder
	for _, line := range strings.Split(od[i:], "\n") {
		b.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "#"), " ") + "\n")
	}
	require.NoError(t, os.WriteFile(filepath.Join(out, "features", "ported.yaml"), []byte(b.String()), 0o644))
	repo, err = registry.LoadRepo(out, registry.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	require.NoError(t, err)
	scores := repo.Defs.OnDemandView("driver_scores")
	require.NotNil(t, scores)
	require.Equal(t, []string{"driver_hourly"}, scores.Inputs)
	require.Equal(t, "surge", scores.Request[0].Name)
}

// TestReportNamesFeastObjects pins the report lines the migration guide
// promises.
func TestReportNamesFeastObjects(t *testing.T) {
	res := translateFixture(t, goldenOptions)
	var b bytes.Buffer
	require.NoError(t, res.Report.Write(&b))
	out := b.String()
	for _, want := range []string{
		"feature view driver_lifetime: view driver_lifetime; ttl 0 means no age limit",
		"feature view driver_hourly: ttl 48h is enforced online too",
		"data source driver_stats: relative path data/driver_stats.parquet resolves against the Feast repository",
		"data source driver_stats: created_timestamp_column created breaks ties",
		"data source rider-history: is named rider_history in Quiver",
		"stream feature view driver_trips: aggregation 4 (count_distinct of fare)",
		"on-demand feature view driver_scores: runs Python",
		"feature service ranking-v2: projection alias dh is not kept",
		"feature service ranking_v1: references on-demand view driver_scores",
	} {
		require.Contains(t, out, want)
	}
	od := string(fileOf(t, res, FileOnDemand))
	for _, line := range strings.Split(strings.TrimSpace(od), "\n") {
		require.True(t, line == "" || strings.HasPrefix(line, "#"), "every line of the on-demand file is a comment: %q", line)
	}
	require.Contains(t, od, "#   driver_hourly.conv_rate (float32)")
	require.Contains(t, od, "#   request.surge (float64)")
	require.Contains(t, od, "#       - name: adjusted_conv")
}

func fileOf(t *testing.T, res *Result, p string) []byte {
	t.Helper()
	for _, f := range res.Files {
		if f.Path == p {
			return f.Data
		}
	}
	t.Fatalf("no file %s", p)
	return nil
}

func TestWriteFilesKeepsExistingFiles(t *testing.T) {
	dir := t.TempDir()
	files := []File{{Path: "quiver.yaml", Data: []byte("new\n")}, {Path: "features/a.yaml", Data: []byte("a\n")}}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "quiver.yaml"), []byte("old\n"), 0o644))
	err := WriteFiles(dir, files, false)
	require.ErrorIs(t, err, ErrExists)
	require.Contains(t, err.Error(), "quiver.yaml (give --force to overwrite)")
	b, err := os.ReadFile(filepath.Join(dir, "quiver.yaml"))
	require.NoError(t, err)
	require.Equal(t, "old\n", string(b))
	_, err = os.Stat(filepath.Join(dir, "features", "a.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing is written when one file exists")

	require.NoError(t, WriteFiles(dir, files, true))
	b, err = os.ReadFile(filepath.Join(dir, "quiver.yaml"))
	require.NoError(t, err)
	require.Equal(t, "new\n", string(b))
}

func TestProjectChoice(t *testing.T) {
	reg := &Registry{Projects: []*Project{{Name: "a"}, {Name: "b"}}}
	_, err := Translate(reg, Options{})
	require.EqualError(t, err, "the registry holds projects a, b; choose one with --project")
	_, err = Translate(reg, Options{Project: "c"})
	require.EqualError(t, err, `the registry has no project "c" (it has: a, b)`)
	_, err = Translate(&Registry{}, Options{})
	require.ErrorContains(t, err, "the registry holds no project")
	res, err := Translate(reg, Options{Project: "b", FeastRepo: "/f", OutDir: "/q"})
	require.NoError(t, err)
	require.Equal(t, "b", res.Project)
}

func TestQuiverName(t *testing.T) {
	for in, want := range map[string]string{"ranking-v2": "ranking_v2", "Driver Stats": "driver_stats",
		"7day": "_7day", "a__b": "a_b", "ok_name": "ok_name", "": "_"} {
		require.Equal(t, want, QuiverName(in), in)
	}
}

// TestRenamesAndLeftOuts covers what the fixture does not: names that
// collide or are invalid, renamed columns, types and sources that do not
// map. The result still validates.
func TestRenamesAndLeftOuts(t *testing.T) {
	events := &DataSource{Name: "events", Project: "p", Type: SourceFile, File: &FileOptions{URI: "s3://bucket/events/"}, TimestampField: "ts"}
	bq := &DataSource{Name: "bq", Project: "p", Type: SourceBigQuery, Options: "bigquery_options", TimestampField: "ts"}
	reg := &Registry{
		Projects:    []*Project{{Name: "p"}},
		Entities:    []*Entity{{Name: "user", Project: "p", JoinKey: "userId", Type: TypeInt32}},
		DataSources: []*DataSource{events, bq},
		FeatureViews: []*FeatureView{
			{Name: "events", Project: "p", Entities: []string{"user"}, BatchSource: events, Online: true, Features: []*Field{
				{Name: "clickCount", Type: TypeInt64}, {Name: "labels", Type: 23}, {Name: "attrs", Type: 20}}},
			{Name: "from_bq", Project: "p", Entities: []string{"user"}, BatchSource: bq, Features: []*Field{{Name: "x", Type: TypeInt64}}},
			{Name: "no_entity", Project: "p", Entities: []string{dummyEntity}, BatchSource: events, Features: []*Field{{Name: "y", Type: TypeInt64}}},
		},
		FeatureServices: []*FeatureService{{Name: "svc", Project: "p", Projections: []*Projection{
			{ViewName: "events", Columns: []*Field{{Name: "clickCount"}}}, {ViewName: "from_bq", Columns: []*Field{{Name: "x"}}}}}},
	}
	res, err := Translate(reg, Options{FeastRepo: "/f", OutDir: "/q"})
	require.NoError(t, err)
	var names []string
	files := map[string][]byte{}
	for _, f := range res.Files {
		if f.Path != registry.ConfigFile {
			names = append(names, f.Path)
			files[f.Path] = f.Data
		}
	}
	defs, errs := registry.ParseDefinitions(res.Project, names, files)
	require.Empty(t, errs)

	src := defs.Source("events_source")
	require.NotNil(t, src, "the source gives its name to the view")
	require.Equal(t, "s3://bucket/events/", src.Path)
	require.Equal(t, map[string]string{"userId": "userid", "clickCount": "clickcount"}, src.FieldMapping)
	require.Equal(t, "int64", defs.Entity("user").JoinKeys[0].Type.String())
	v := defs.FeatureView("events")
	require.Len(t, v.Features, 2)
	require.Equal(t, "clickcount", v.Features[0].Name)
	require.Equal(t, "list<string>", v.Features[1].Type.String())
	require.Nil(t, defs.FeatureView("from_bq"))
	require.Nil(t, defs.FeatureView("no_entity"))
	require.Equal(t, []string{"events:clickcount"}, defs.FeatureService("svc").Features)

	var b bytes.Buffer
	require.NoError(t, res.Report.Write(&b))
	for _, want := range []string{
		"data source events: is named events_source in Quiver: \"events\" is taken by the feature view events",
		"entity user: join key userId is INT32 in Feast and int64 in Quiver",
		"feature view events: feature attrs is MAP, which Quiver has no type for; it is left out",
		"feature view events: feature labels is STRING_SET in Feast and list<string> in Quiver",
		"data source bq: is a BATCH_BIGQUERY (bigquery_options) source",
		"feature view from_bq: source bq is a BATCH_BIGQUERY",
		"feature view no_entity: has no entities",
		"feature service svc: references view from_bq, which did not map",
	} {
		require.Contains(t, b.String(), want)
	}
}
