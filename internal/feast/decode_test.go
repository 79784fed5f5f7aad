package feast

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/quiverdata/quiver/registry"
)

func TestDecodeFixture(t *testing.T) {
	reg, err := Decode(fixture(t))
	require.NoError(t, err)
	require.Len(t, reg.Projects, 1)
	require.Equal(t, "rides", reg.Projects[0].Name)

	var driver *Entity
	for _, e := range reg.Entities {
		if e.Name == "driver" {
			driver = e
		}
	}
	require.NotNil(t, driver)
	require.Equal(t, &Entity{Name: "driver", Project: "rides", Type: TypeInt64, Description: "a driver of the fleet",
		JoinKey: "driver_id", Tags: map[string]string{"team": "mobility"}, Owner: "mobility@example.com"}, driver)

	var hourly *FeatureView
	for _, v := range reg.FeatureViews {
		if v.Name == "driver_hourly" {
			hourly = v
		}
	}
	require.NotNil(t, hourly)
	require.Equal(t, 48*time.Hour, hourly.TTL)
	require.True(t, hourly.Online)
	require.Equal(t, []string{"driver"}, hourly.Entities)
	require.Equal(t, "data/driver_stats.parquet", hourly.BatchSource.File.URI)
	require.Equal(t, "created", hourly.BatchSource.CreatedTimestampColumn)
	require.Equal(t, map[string]string{"conversion_rate": "conv_rate"}, hourly.BatchSource.FieldMapping)
	require.Equal(t, TypeFloatList, hourly.Features[3].Type)

	require.Len(t, reg.StreamFeatureViews, 1)
	sv := reg.StreamFeatureViews[0]
	require.Equal(t, SourceKafka, sv.StreamSource.Type)
	require.Equal(t, "broker-1:9092,broker-2:9092", sv.StreamSource.Kafka.BootstrapServers)
	require.Equal(t, "json", sv.StreamSource.Kafka.Format)
	require.Equal(t, 5*time.Minute, sv.StreamSource.Kafka.WatermarkDelay)
	require.Equal(t, &Aggregation{Column: "fare", Function: "max", TimeWindow: 2 * time.Hour, SlideInterval: 10 * time.Minute}, sv.Aggregations[3])

	require.Len(t, reg.OnDemandFeatureViews, 1)
	od := reg.OnDemandFeatureViews[0]
	require.Equal(t, "pandas", od.Mode)
	require.Contains(t, od.Transformation.BodyText, "def driver_scores")
	require.Len(t, od.Sources, 2)

	require.Len(t, reg.FeatureServices, 2)
}

// field builders for hand-made registries.
func tagBytes(num protowire.Number, b []byte) []byte {
	out := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(out, b)
}

func TestDecodeErrorsNameObjectAndField(t *testing.T) {
	// feature_views[0] named v with a ttl whose seconds are a string.
	spec := append(tagBytes(1, []byte("v")), tagBytes(6, tagBytes(1, []byte("x")))...)
	_, err := Decode(tagBytes(6, tagBytes(1, spec)))
	require.EqualError(t, err, "decode feast registry: feature_views[0] (v): spec.ttl: field 1 is length-delimited, want varint")

	// A data source whose name is not UTF-8.
	_, err = Decode(tagBytes(12, tagBytes(20, []byte{0xff})))
	require.EqualError(t, err, "decode feast registry: data_sources[0]: name: is not valid UTF-8")

	// A truncated message.
	_, err = Decode(tagBytes(1, []byte("abc"))[:3])
	require.ErrorContains(t, err, "decode feast registry: field 1: ")

	// Not a registry at all: text.
	_, err = Decode([]byte("project: rides\n"))
	require.Error(t, err)

	// Sources nested too deep.
	src := tagBytes(20, []byte("s"))
	for i := 0; i < 10; i++ {
		src = append(tagBytes(20, []byte("s")), tagBytes(26, src)...)
	}
	_, err = Decode(tagBytes(12, src))
	require.ErrorContains(t, err, "data sources nest more than 4 deep")
}

func TestDecodeSkipsUnknownFields(t *testing.T) {
	spec := tagBytes(1, []byte("driver"))
	spec = protowire.AppendTag(spec, 99, protowire.Fixed64Type)
	spec = protowire.AppendFixed64(spec, 7)
	spec = append(spec, tagBytes(4, []byte("driver_id"))...)
	b := append(tagBytes(1, tagBytes(1, spec)), tagBytes(200, []byte("future"))...)
	reg, err := Decode(b)
	require.NoError(t, err)
	require.Equal(t, "driver_id", reg.Entities[0].JoinKey)
}

// FuzzDecode: whatever the bytes, Decode and Translate return, never panic.
func FuzzDecode(f *testing.F) {
	b := fixture(f)
	f.Add(b)
	for _, n := range []int{1, 2, 10, 100, 1000, len(b) / 2, len(b) - 1} {
		if n < len(b) {
			f.Add(b[:n])
		}
	}
	f.Add([]byte{})
	f.Add([]byte("project: rides\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		reg, err := Decode(data)
		if err != nil {
			return
		}
		res, err := Translate(reg, Options{FeastRepo: "/feast/repo", OutDir: "/quiver/repo"})
		if err != nil {
			return
		}
		var sink discard
		_ = res.Report.Write(&sink)
		// Whatever maps is a repository that validates.
		var names []string
		files := map[string][]byte{}
		for _, f := range res.Files {
			if f.Path == registry.ConfigFile {
				if _, errs := registry.ParseConfig(f.Data, func(string) (string, bool) { return "", false }); len(errs) > 0 {
					t.Fatalf("quiver.yaml does not validate: %v\n%s", errs, f.Data)
				}
				continue
			}
			names = append(names, f.Path)
			files[f.Path] = f.Data
		}
		if _, errs := registry.ParseDefinitions(res.Project, names, files); len(errs) > 0 {
			var all []byte
			for _, n := range names {
				all = append(all, files[n]...)
			}
			t.Fatalf("definitions do not validate: %v\n%s", errs, all)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
