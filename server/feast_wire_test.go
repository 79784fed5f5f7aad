package server

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/quiverdata/quiver/online"
	feastservingpb "github.com/quiverdata/quiver/proto/feast/serving"
	"github.com/quiverdata/quiver/registry"
)

// Messages serialized by Feast's own generated Python code (Feast 0.67's
// feast.serving and feast.types, deterministic serialization). They pin
// the contract: the field numbers and types of proto/feast.
const (
	// features ["stats:rate", "scores:adjusted"], entities {driver_id:
	// [1, 2]}, full_feature_names, request_context {all: one Value of
	// every member Quiver declares, in field order, then an empty Value},
	// include_feature_view_version_metadata.
	feastWireRequest = "121d0a0a73746174733a726174650a0f73636f7265733a61646a75737465641a150a096472697665725f696412080a0220010a02200220012a97010a03616c6c128f010a040a0200ff0a031201730a0b18fdffffffffffffffff010a07208080808080200a0929000000000000d03f0a05350000003f0a0238010a0640c0abd2cf060a055a030a01610a0862060a01780a01790a056a030a01010a0572030a01020a0c7a0a0a080000000000000c400a098201060a04000090400a078a01040a0200010a069201030a01050a039801000a003001"
	// feature_service "svc", entities {driver_id: [7]}.
	feastWireServiceRequest = "0a037376631a110a096472697665725f696412040a022007"
	// names [driver_id, rate, seen], view metadata [stats]; driver_id
	// [1, 3] PRESENT at the epoch; rate [0.5 float_val, empty] and seen
	// [unix_timestamp 1777636800, empty], PRESENT then NOT_FOUND, at
	// 1777636740 then the epoch.
	feastWireResponse = "0a220a170a096472697665725f69640a04726174650a047365656e12070a05737461747312100a0220010a022003120201011a001a0012170a05350000003f0a00120201031a060884abd2cf061a0012180a0640c0abd2cf060a00120201031a060884abd2cf061a00"
	// version "test".
	feastWireInfo = "0a0474657374"
)

// noUnknownFields fails when m or any message in it holds fields its
// declaration does not know.
func noUnknownFields(t *testing.T, m protoreflect.Message, at string) {
	t.Helper()
	require.Empty(t, m.GetUnknown(), "unknown fields in %s", at)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := at + "." + string(fd.Name())
		switch {
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				noUnknownFields(t, mv.Message(), name+"["+k.String()+"]")
				return true
			})
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				noUnknownFields(t, v.List().Get(i).Message(), name)
			}
		case fd.Message() != nil && !fd.IsMap():
			noUnknownFields(t, v.Message(), name)
		}
		return true
	})
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// TestFeastWireCompatibility: Feast's bytes decode into Quiver's messages
// with nothing unknown and mean what Feast meant; Quiver's answers encode
// to the bytes Feast's code writes for the same answer.
func TestFeastWireCompatibility(t *testing.T) {
	var req feastservingpb.GetOnlineFeaturesRequest
	require.NoError(t, proto.Unmarshal(unhex(t, feastWireRequest), &req))
	noUnknownFields(t, req.ProtoReflect(), "request")
	got, err := feastRequestProto(&req)
	require.NoError(t, err)
	require.Equal(t, []string{"stats:rate", "scores:adjusted"}, got.Features)
	require.Equal(t, map[string][]any{"driver_id": {int64(1), int64(2)}}, got.Entities)
	require.True(t, got.FullFeatureNames)
	require.True(t, got.ViewMetadata)
	require.Equal(t, []any{[]byte{0, 0xff}, "s", int32(-3), int64(1) << 40, 0.25, float32(0.5), true, time.Unix(1777636800, 0).UTC(),
		[]any{[]byte("a")}, []any{"x", "y"}, []any{int32(1)}, []any{int64(2)}, []any{3.5}, []any{float32(4.5)}, []any{false, true},
		[]any{time.Unix(5, 0).UTC()}, nil, nil}, got.RequestContext["all"])

	var svc feastservingpb.GetOnlineFeaturesRequest
	require.NoError(t, proto.Unmarshal(unhex(t, feastWireServiceRequest), &svc))
	noUnknownFields(t, svc.ProtoReflect(), "request")
	require.Equal(t, "svc", svc.GetFeatureService())
	require.Nil(t, svc.GetFeatures())

	at := time.Unix(1777636740, 0).UTC()
	f32 := registry.ValueType{Elem: registry.Float32}
	ts := registry.ValueType{Elem: registry.Timestamp}
	ans := &feastAnswer{Rows: 2, Names: []string{"driver_id", "rate", "seen"}, Views: []string{"stats"}, Cols: []feastColumn{
		{Type: registry.TypeInt64, Keys: []any{int64(1), int64(3)}},
		{Type: f32, FV: &online.FeatureVector{Type: f32, Values: online.Column{Type: f32, Float32s: []float32{0.5, 0}},
			Statuses: []online.Status{online.Present, online.NotFound}, EventTimes: []time.Time{at, {}}}},
		{Type: ts, FV: &online.FeatureVector{Type: ts, Values: online.Column{Type: ts, Times: []time.Time{time.Unix(1777636800, 0).UTC(), {}}},
			Statuses: []online.Status{online.Present, online.NotFound}, EventTimes: []time.Time{at, {}}}},
	}}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(feastProto(ans))
	require.NoError(t, err)
	require.Equal(t, feastWireResponse, hex.EncodeToString(b))

	b, err = proto.Marshal(&feastservingpb.GetFeastServingInfoResponse{Version: "test"})
	require.NoError(t, err)
	require.Equal(t, feastWireInfo, hex.EncodeToString(b))
}
