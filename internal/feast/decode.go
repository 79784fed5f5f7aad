package feast

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Registry is the part of a feast.core.Registry the import reads. Objects
// keep the order they have in the registry.
type Registry struct {
	Entities             []*Entity
	DataSources          []*DataSource
	FeatureViews         []*FeatureView
	StreamFeatureViews   []*StreamFeatureView
	OnDemandFeatureViews []*OnDemandFeatureView
	FeatureServices      []*FeatureService
	Projects             []*Project
	// ProjectNames lists the projects of the registry's project_metadata
	// (registries written before projects were objects of their own).
	ProjectNames []string
	// FeatureTables counts the legacy feature tables, which are not read.
	FeatureTables int
}

// ValueType is a feast.types.ValueType.Enum value.
type ValueType int32

// The Feast value types the translation knows by name.
const (
	TypeInvalid           ValueType = 0
	TypeBytes             ValueType = 1
	TypeString            ValueType = 2
	TypeInt32             ValueType = 3
	TypeInt64             ValueType = 4
	TypeDouble            ValueType = 5
	TypeFloat             ValueType = 6
	TypeBool              ValueType = 7
	TypeUnixTimestamp     ValueType = 8
	TypeBytesList         ValueType = 11
	TypeStringList        ValueType = 12
	TypeInt32List         ValueType = 13
	TypeInt64List         ValueType = 14
	TypeDoubleList        ValueType = 15
	TypeFloatList         ValueType = 16
	TypeBoolList          ValueType = 17
	TypeUnixTimestampList ValueType = 18
	TypeBytesSet          ValueType = 22
	TypeUnixTimestampSet  ValueType = 29
	TypeJSON              ValueType = 32
	TypeUUID              ValueType = 36
	TypeTimeUUID          ValueType = 37
)

var valueTypeNames = map[ValueType]string{
	0: "INVALID", 1: "BYTES", 2: "STRING", 3: "INT32", 4: "INT64", 5: "DOUBLE", 6: "FLOAT", 7: "BOOL",
	8: "UNIX_TIMESTAMP", 11: "BYTES_LIST", 12: "STRING_LIST", 13: "INT32_LIST", 14: "INT64_LIST",
	15: "DOUBLE_LIST", 16: "FLOAT_LIST", 17: "BOOL_LIST", 18: "UNIX_TIMESTAMP_LIST", 19: "NULL",
	20: "MAP", 21: "MAP_LIST", 22: "BYTES_SET", 23: "STRING_SET", 24: "INT32_SET", 25: "INT64_SET",
	26: "DOUBLE_SET", 27: "FLOAT_SET", 28: "BOOL_SET", 29: "UNIX_TIMESTAMP_SET", 32: "JSON",
	33: "JSON_LIST", 34: "STRUCT", 35: "STRUCT_LIST", 36: "UUID", 37: "TIME_UUID", 38: "UUID_LIST",
	39: "TIME_UUID_LIST", 40: "UUID_SET", 41: "TIME_UUID_SET", 42: "VALUE_LIST", 43: "VALUE_SET",
	44: "DECIMAL", 45: "DECIMAL_LIST", 46: "DECIMAL_SET", 47: "SCALAR_MAP", 48: "ZONED_TIMESTAMP",
}

func (t ValueType) String() string {
	if s, ok := valueTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("value type %d", int32(t))
}

// Field is a feast.core.FeatureSpecV2: a feature, an entity column or a
// request field.
type Field struct {
	Name        string
	Type        ValueType
	Tags        map[string]string
	Description string
}

// Entity is a feast.core.Entity (its spec).
type Entity struct {
	Name        string
	Project     string
	Type        ValueType // of the join key; INVALID when not declared
	Description string
	JoinKey     string
	Tags        map[string]string
	Owner       string
}

// SourceType is a feast.core.DataSource.SourceType value.
type SourceType int32

// The source types.
const (
	SourceInvalid   SourceType = 0
	SourceFile      SourceType = 1
	SourceBigQuery  SourceType = 2
	SourceKafka     SourceType = 3
	SourceKinesis   SourceType = 4
	SourceRedshift  SourceType = 5
	SourceCustom    SourceType = 6
	SourceRequest   SourceType = 7
	SourceSnowflake SourceType = 8
	SourcePush      SourceType = 9
	SourceTrino     SourceType = 10
	SourceSpark     SourceType = 11
	SourceAthena    SourceType = 12
	SourceIceberg   SourceType = 13
)

var sourceTypeNames = map[SourceType]string{
	0: "INVALID", 1: "BATCH_FILE", 2: "BATCH_BIGQUERY", 3: "STREAM_KAFKA", 4: "STREAM_KINESIS",
	5: "BATCH_REDSHIFT", 6: "CUSTOM_SOURCE", 7: "REQUEST_SOURCE", 8: "BATCH_SNOWFLAKE", 9: "PUSH_SOURCE",
	10: "BATCH_TRINO", 11: "BATCH_SPARK", 12: "BATCH_ATHENA", 13: "BATCH_ICEBERG",
}

func (t SourceType) String() string {
	if s, ok := sourceTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("source type %d", int32(t))
}

// DataSource is a feast.core.DataSource.
type DataSource struct {
	Name                   string
	Project                string
	Description            string
	Tags                   map[string]string
	Owner                  string
	Type                   SourceType
	FieldMapping           map[string]string
	TimestampField         string
	DatePartitionColumn    string
	CreatedTimestampColumn string
	// ClassType is the Python class that wrote the source
	// (data_source_class_type), e.g. feast.data_source.KafkaSource.
	ClassType   string
	BatchSource *DataSource
	File        *FileOptions
	Kafka       *KafkaOptions
	Request     *RequestOptions
	// Options names the options message the source carries when it is none
	// of the above (e.g. bigquery_options), for reports.
	Options string
}

// FileOptions are a file source's options.
type FileOptions struct {
	URI string
	// Format is "parquet", "delta" or "" (not stated; Feast reads Parquet).
	Format             string
	S3EndpointOverride string
}

// KafkaOptions are a Kafka source's options.
type KafkaOptions struct {
	BootstrapServers string
	Topic            string
	// Format is "json", "avro", "proto" or "" (not stated).
	Format string
	// Schema is the format's schema_json (json, avro) or class_path (proto).
	Schema         string
	WatermarkDelay time.Duration
}

// RequestOptions are a request source's fields.
type RequestOptions struct {
	Schema []*Field
}

// FeatureView is a feast.core.FeatureView (its spec).
type FeatureView struct {
	Name          string
	Project       string
	Entities      []string
	Features      []*Field
	Tags          map[string]string
	TTL           time.Duration
	BatchSource   *DataSource
	Online        bool
	StreamSource  *DataSource
	Description   string
	Owner         string
	EntityColumns []*Field
	Offline       bool
	// SourceViews counts the views a derived view reads (source_views).
	SourceViews    int
	Transformation *UDF
	Mode           string
	Disabled       bool
}

// UDF is a Python transformation: feature_transformation's user-defined
// function, or the older user_defined_function.
type UDF struct {
	Name     string
	BodyText string
	Mode     string
	// Substrait is set when the transformation is a Substrait plan.
	Substrait bool
}

// Aggregation is a feast.core.Aggregation.
type Aggregation struct {
	Column        string
	Function      string
	TimeWindow    time.Duration
	SlideInterval time.Duration
	Name          string
}

// StreamFeatureView is a feast.core.StreamFeatureView (its spec).
type StreamFeatureView struct {
	FeatureView
	Aggregations   []*Aggregation
	TimestampField string
	EnableTiling   bool
	TilingHop      time.Duration
}

// OnDemandSource is one input of an on-demand view: a feature view (or a
// projection of one) or a request source.
type OnDemandSource struct {
	Key        string
	Projection *Projection // also set, from the view, for a plain feature_view input
	Request    *DataSource
}

// OnDemandFeatureView is a feast.core.OnDemandFeatureView (its spec).
type OnDemandFeatureView struct {
	Name               string
	Project            string
	Features           []*Field
	Sources            []*OnDemandSource
	Transformation     *UDF
	Description        string
	Tags               map[string]string
	Owner              string
	Mode               string
	WriteToOnlineStore bool
	Entities           []string
	Aggregations       int
}

// Projection is a feast.core.FeatureViewProjection: the features of one
// view a service or an on-demand view uses.
type Projection struct {
	ViewName   string
	Alias      string
	Columns    []*Field
	JoinKeyMap map[string]string
	ViewType   string
}

// FeatureService is a feast.core.FeatureService (its spec).
type FeatureService struct {
	Name        string
	Project     string
	Projections []*Projection
	Tags        map[string]string
	Description string
	Owner       string
	Logging     bool
}

// Project is a feast.core.Project (its spec).
type Project struct {
	Name        string
	Description string
	Tags        map[string]string
	Owner       string
}

// maxSourceDepth bounds how deeply data sources nest (a stream source's
// batch source, a push source's batch source); Feast writes at most two.
const maxSourceDepth = 4

// Decode parses a serialized feast.core.Registry. An error names the
// object (by list, index and, when known, name) and the field.
func Decode(b []byte) (*Registry, error) {
	r := &Registry{}
	counts := map[protowire.Number]int{}
	err := walk(b, func(num protowire.Number, f field) error {
		i := counts[num]
		counts[num]++
		list, ok := registryLists[num]
		if !ok {
			if num == 2 {
				r.FeatureTables++
			}
			return nil
		}
		m, err := f.message()
		if err != nil {
			return at(fmt.Sprintf("%s[%d]", list.name, i), err)
		}
		if err := list.decode(r, m); err != nil {
			where := fmt.Sprintf("%s[%d]", list.name, i)
			if name := specName(m, list.nameField...); name != "" {
				where += fmt.Sprintf(" (%s)", name)
			}
			return fmt.Errorf("%s: %w", where, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decode feast registry: %w", err)
	}
	return r, nil
}

type registryList struct {
	name string
	// nameField is the path of field numbers to the object's name, for
	// error messages.
	nameField []protowire.Number
	decode    func(r *Registry, m []byte) error
}

var registryLists = map[protowire.Number]registryList{
	1: {"entities", []protowire.Number{1, 1}, func(r *Registry, m []byte) error {
		e, err := decodeWrapped(m, decodeEntity)
		r.Entities = append(r.Entities, e)
		return err
	}},
	6: {"feature_views", []protowire.Number{1, 1}, func(r *Registry, m []byte) error {
		v, err := decodeWrapped(m, decodeFeatureView)
		r.FeatureViews = append(r.FeatureViews, v)
		return err
	}},
	7: {"feature_services", []protowire.Number{1, 1}, func(r *Registry, m []byte) error {
		s, err := decodeWrapped(m, decodeFeatureService)
		r.FeatureServices = append(r.FeatureServices, s)
		return err
	}},
	8: {"on_demand_feature_views", []protowire.Number{1, 1}, func(r *Registry, m []byte) error {
		v, err := decodeWrapped(m, decodeOnDemandView)
		r.OnDemandFeatureViews = append(r.OnDemandFeatureViews, v)
		return err
	}},
	12: {"data_sources", []protowire.Number{20}, func(r *Registry, m []byte) error {
		s, err := decodeDataSource(m, 0)
		r.DataSources = append(r.DataSources, s)
		return err
	}},
	14: {"stream_feature_views", []protowire.Number{1, 1}, func(r *Registry, m []byte) error {
		v, err := decodeWrapped(m, decodeStreamView)
		r.StreamFeatureViews = append(r.StreamFeatureViews, v)
		return err
	}},
	15: {"project_metadata", []protowire.Number{1}, func(r *Registry, m []byte) error {
		var name string
		err := walk(m, func(num protowire.Number, f field) error {
			if num == 1 {
				return f.str(&name, "project")
			}
			return nil
		})
		if name != "" {
			r.ProjectNames = append(r.ProjectNames, name)
		}
		return err
	}},
	17: {"projects", []protowire.Number{1, 1}, func(r *Registry, m []byte) error {
		p, err := decodeWrapped(m, decodeProject)
		r.Projects = append(r.Projects, p)
		return err
	}},
}

// decodeWrapped decodes an object stored as {1: spec, 2: meta}: the spec
// with dec, the meta skipped.
func decodeWrapped[T any](b []byte, dec func([]byte) (*T, error)) (*T, error) {
	var out *T
	err := walk(b, func(num protowire.Number, f field) error {
		if num != 1 {
			return nil
		}
		m, err := f.message()
		if err != nil {
			return at("spec", err)
		}
		v, err := dec(m)
		if err != nil {
			return at("spec", err)
		}
		out = v
		return nil
	})
	if err == nil && out == nil {
		err = errors.New("spec: missing")
	}
	if out == nil {
		out = new(T)
	}
	return out, err
}

func decodeEntity(b []byte) (*Entity, error) {
	e := &Entity{}
	err := walk(b, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			return f.str(&e.Name, "name")
		case 9:
			return f.str(&e.Project, "project")
		case 2:
			return f.enum((*int32)(&e.Type), "value_type")
		case 3:
			return f.str(&e.Description, "description")
		case 4:
			return f.str(&e.JoinKey, "join_key")
		case 8:
			return f.mapEntry(&e.Tags, "tags")
		case 10:
			return f.str(&e.Owner, "owner")
		}
		return nil
	})
	return e, err
}

func decodeField(b []byte) (*Field, error) {
	fs := &Field{}
	err := walk(b, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			return f.str(&fs.Name, "name")
		case 2:
			return f.enum((*int32)(&fs.Type), "value_type")
		case 3:
			return f.mapEntry(&fs.Tags, "tags")
		case 4:
			return f.str(&fs.Description, "description")
		}
		return nil
	})
	return fs, err
}

// fieldList appends a decoded FeatureSpecV2 to list, naming it in errors.
func fieldList(f field, list *[]*Field, name string) error {
	m, err := f.message()
	if err != nil {
		return at(fmt.Sprintf("%s[%d]", name, len(*list)), err)
	}
	fs, err := decodeField(m)
	if err != nil {
		return at(fmt.Sprintf("%s[%d]", name, len(*list)), err)
	}
	*list = append(*list, fs)
	return nil
}

var sourceOptionNames = map[protowire.Number]string{
	12: "bigquery_options", 14: "kinesis_options", 15: "redshift_options", 16: "custom_options",
	19: "snowflake_options", 27: "spark_options", 30: "trino_options", 35: "athena_options",
}

func decodeDataSource(b []byte, depth int) (*DataSource, error) {
	s := &DataSource{}
	if depth > maxSourceDepth {
		return s, fmt.Errorf("data sources nest more than %d deep", maxSourceDepth)
	}
	err := walk(b, func(num protowire.Number, f field) error {
		switch num {
		case 20:
			return f.str(&s.Name, "name")
		case 21:
			return f.str(&s.Project, "project")
		case 23:
			return f.str(&s.Description, "description")
		case 24:
			return f.mapEntry(&s.Tags, "tags")
		case 25:
			return f.str(&s.Owner, "owner")
		case 1:
			return f.enum((*int32)(&s.Type), "type")
		case 2:
			return f.mapEntry(&s.FieldMapping, "field_mapping")
		case 3:
			return f.str(&s.TimestampField, "timestamp_field")
		case 4:
			return f.str(&s.DatePartitionColumn, "date_partition_column")
		case 5:
			return f.str(&s.CreatedTimestampColumn, "created_timestamp_column")
		case 17:
			return f.str(&s.ClassType, "data_source_class_type")
		case 26:
			m, err := f.message()
			if err != nil {
				return at("batch_source", err)
			}
			bs, err := decodeDataSource(m, depth+1)
			if err != nil {
				return at("batch_source", err)
			}
			s.BatchSource = bs
		case 11:
			m, err := f.message()
			if err != nil {
				return at("file_options", err)
			}
			fo, err := decodeFileOptions(m)
			if err != nil {
				return at("file_options", err)
			}
			s.File = fo
		case 13:
			m, err := f.message()
			if err != nil {
				return at("kafka_options", err)
			}
			ko, err := decodeKafkaOptions(m)
			if err != nil {
				return at("kafka_options", err)
			}
			s.Kafka = ko
		case 18:
			m, err := f.message()
			if err != nil {
				return at("request_data_options", err)
			}
			ro := &RequestOptions{}
			err = walk(m, func(num protowire.Number, f field) error {
				if num == 3 {
					return fieldList(f, &ro.Schema, "schema")
				}
				return nil
			})
			if err != nil {
				return at("request_data_options", err)
			}
			s.Request = ro
		case 22:
			if _, err := f.message(); err != nil {
				return at("push_options", err)
			}
		default:
			if name, ok := sourceOptionNames[num]; ok {
				if _, err := f.message(); err != nil {
					return at(name, err)
				}
				s.Options = name
			}
		}
		return nil
	})
	return s, err
}

func decodeFileOptions(b []byte) (*FileOptions, error) {
	fo := &FileOptions{}
	err := walk(b, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			m, err := f.message()
			if err != nil {
				return at("file_format", err)
			}
			return walk(m, func(num protowire.Number, f field) error {
				switch num {
				case 1:
					fo.Format = "parquet"
				case 2:
					fo.Format = "delta"
				}
				return nil
			})
		case 2:
			return f.str(&fo.URI, "uri")
		case 3:
			return f.str(&fo.S3EndpointOverride, "s3_endpoint_override")
		}
		return nil
	})
	return fo, err
}

func decodeKafkaOptions(b []byte) (*KafkaOptions, error) {
	ko := &KafkaOptions{}
	err := walk(b, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			return f.str(&ko.BootstrapServers, "kafka_bootstrap_servers")
		case 2:
			return f.str(&ko.Topic, "topic")
		case 3:
			m, err := f.message()
			if err != nil {
				return at("message_format", err)
			}
			err = walk(m, func(num protowire.Number, f field) error {
				kinds := map[protowire.Number]string{1: "avro", 2: "proto", 3: "json"}
				kind, ok := kinds[num]
				if !ok {
					return nil
				}
				ko.Format = kind
				fm, err := f.message()
				if err != nil {
					return at(kind+"_format", err)
				}
				// avro and json carry schema_json as field 1, proto its
				// class_path as field 1.
				return walk(fm, func(num protowire.Number, f field) error {
					if num == 1 {
						return f.str(&ko.Schema, kind+"_format.schema")
					}
					return nil
				})
			})
			if err != nil {
				return at("message_format", err)
			}
		case 4:
			return f.duration(&ko.WatermarkDelay, "watermark_delay_threshold")
		}
		return nil
	})
	return ko, err
}

// sourceField decodes an embedded DataSource field into *dst.
func sourceField(f field, dst **DataSource, name string) error {
	m, err := f.message()
	if err != nil {
		return at(name, err)
	}
	s, err := decodeDataSource(m, 1)
	if err != nil {
		return at(name, err)
	}
	*dst = s
	return nil
}

func decodeFeatureView(b []byte) (*FeatureView, error) {
	v := &FeatureView{}
	err := walk(b, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			return f.str(&v.Name, "name")
		case 2:
			return f.str(&v.Project, "project")
		case 3:
			return f.strList(&v.Entities, "entities")
		case 4:
			return fieldList(f, &v.Features, "features")
		case 5:
			return f.mapEntry(&v.Tags, "tags")
		case 6:
			return f.duration(&v.TTL, "ttl")
		case 7:
			return sourceField(f, &v.BatchSource, "batch_source")
		case 8:
			return f.boolean(&v.Online, "online")
		case 9:
			return sourceField(f, &v.StreamSource, "stream_source")
		case 10:
			return f.str(&v.Description, "description")
		case 11:
			return f.str(&v.Owner, "owner")
		case 12:
			return fieldList(f, &v.EntityColumns, "entity_columns")
		case 13:
			return f.boolean(&v.Offline, "offline")
		case 14:
			if _, err := f.message(); err != nil {
				return at("source_views", err)
			}
			v.SourceViews++
		case 15:
			return transformationField(f, &v.Transformation, "feature_transformation")
		case 16:
			return f.str(&v.Mode, "mode")
		case 20:
			return f.boolean(&v.Disabled, "disabled")
		}
		return nil
	})
	return v, err
}

// transformationField decodes a FeatureTransformationV2.
func transformationField(f field, dst **UDF, name string) error {
	m, err := f.message()
	if err != nil {
		return at(name, err)
	}
	u := &UDF{}
	err = walk(m, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			um, err := f.message()
			if err != nil {
				return at("user_defined_function", err)
			}
			if err := decodeUDF(um, u); err != nil {
				return at("user_defined_function", err)
			}
		case 2:
			if _, err := f.message(); err != nil {
				return at("substrait_transformation", err)
			}
			u.Substrait = true
		}
		return nil
	})
	if err != nil {
		return at(name, err)
	}
	*dst = u
	return nil
}

// decodeUDF decodes a UserDefinedFunction or UserDefinedFunctionV2 (the
// same fields, V2 with a mode) into u; the pickled body is skipped.
func decodeUDF(b []byte, u *UDF) error {
	return walk(b, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			return f.str(&u.Name, "name")
		case 3:
			return f.str(&u.BodyText, "body_text")
		case 4:
			return f.str(&u.Mode, "mode")
		}
		return nil
	})
}

func decodeAggregation(b []byte) (*Aggregation, error) {
	a := &Aggregation{}
	err := walk(b, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			return f.str(&a.Column, "column")
		case 2:
			return f.str(&a.Function, "function")
		case 3:
			return f.duration(&a.TimeWindow, "time_window")
		case 4:
			return f.duration(&a.SlideInterval, "slide_interval")
		case 5:
			return f.str(&a.Name, "name")
		}
		return nil
	})
	return a, err
}

func decodeStreamView(b []byte) (*StreamFeatureView, error) {
	v := &StreamFeatureView{}
	err := walk(b, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			return f.str(&v.Name, "name")
		case 2:
			return f.str(&v.Project, "project")
		case 3:
			return f.strList(&v.Entities, "entities")
		case 4:
			return fieldList(f, &v.Features, "features")
		case 5:
			return fieldList(f, &v.EntityColumns, "entity_columns")
		case 6:
			return f.str(&v.Description, "description")
		case 7:
			return f.mapEntry(&v.Tags, "tags")
		case 8:
			return f.str(&v.Owner, "owner")
		case 9:
			return f.duration(&v.TTL, "ttl")
		case 10:
			return sourceField(f, &v.BatchSource, "batch_source")
		case 11:
			return sourceField(f, &v.StreamSource, "stream_source")
		case 12:
			return f.boolean(&v.Online, "online")
		case 13:
			m, err := f.message()
			if err != nil {
				return at("user_defined_function", err)
			}
			if v.Transformation == nil {
				v.Transformation = &UDF{}
			}
			if err := decodeUDF(m, v.Transformation); err != nil {
				return at("user_defined_function", err)
			}
		case 14:
			return f.str(&v.Mode, "mode")
		case 15:
			m, err := f.message()
			if err != nil {
				return at(fmt.Sprintf("aggregations[%d]", len(v.Aggregations)), err)
			}
			a, err := decodeAggregation(m)
			if err != nil {
				return at(fmt.Sprintf("aggregations[%d]", len(v.Aggregations)), err)
			}
			v.Aggregations = append(v.Aggregations, a)
		case 16:
			return f.str(&v.TimestampField, "timestamp_field")
		case 17:
			return transformationField(f, &v.Transformation, "feature_transformation")
		case 18:
			return f.boolean(&v.EnableTiling, "enable_tiling")
		case 19:
			return f.duration(&v.TilingHop, "tiling_hop_size")
		case 23:
			return f.boolean(&v.Disabled, "disabled")
		}
		return nil
	})
	return v, err
}

func decodeProjection(b []byte) (*Projection, error) {
	p := &Projection{}
	err := walk(b, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			return f.str(&p.ViewName, "feature_view_name")
		case 3:
			return f.str(&p.Alias, "feature_view_name_alias")
		case 2:
			return fieldList(f, &p.Columns, "feature_columns")
		case 4:
			return f.mapEntry(&p.JoinKeyMap, "join_key_map")
		case 11:
			return f.str(&p.ViewType, "view_type")
		}
		return nil
	})
	return p, err
}

func decodeOnDemandView(b []byte) (*OnDemandFeatureView, error) {
	v := &OnDemandFeatureView{}
	err := walk(b, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			return f.str(&v.Name, "name")
		case 2:
			return f.str(&v.Project, "project")
		case 3:
			return fieldList(f, &v.Features, "features")
		case 4:
			m, err := f.message()
			if err != nil {
				return at(fmt.Sprintf("sources[%d]", len(v.Sources)), err)
			}
			s, err := decodeOnDemandSource(m)
			if err != nil {
				return at(fmt.Sprintf("sources[%d]", len(v.Sources)), err)
			}
			v.Sources = append(v.Sources, s)
		case 5:
			m, err := f.message()
			if err != nil {
				return at("user_defined_function", err)
			}
			if v.Transformation == nil {
				v.Transformation = &UDF{}
			}
			if err := decodeUDF(m, v.Transformation); err != nil {
				return at("user_defined_function", err)
			}
		case 10:
			return transformationField(f, &v.Transformation, "feature_transformation")
		case 6:
			return f.str(&v.Description, "description")
		case 7:
			return f.mapEntry(&v.Tags, "tags")
		case 8:
			return f.str(&v.Owner, "owner")
		case 11:
			return f.str(&v.Mode, "mode")
		case 12:
			return f.boolean(&v.WriteToOnlineStore, "write_to_online_store")
		case 13:
			return f.strList(&v.Entities, "entities")
		case 16:
			if _, err := f.message(); err != nil {
				return at(fmt.Sprintf("aggregations[%d]", v.Aggregations), err)
			}
			v.Aggregations++
		}
		return nil
	})
	return v, err
}

// decodeOnDemandSource decodes a sources map entry {1: key, 2: OnDemandSource}.
func decodeOnDemandSource(b []byte) (*OnDemandSource, error) {
	s := &OnDemandSource{}
	err := walk(b, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			return f.str(&s.Key, "key")
		case 2:
			m, err := f.message()
			if err != nil {
				return at("value", err)
			}
			err = walk(m, func(num protowire.Number, f field) error {
				switch num {
				case 1: // a whole feature view: use its name and features
					vm, err := f.message()
					if err != nil {
						return at("feature_view", err)
					}
					fv, err := decodeWrapped(vm, decodeFeatureView)
					if err != nil {
						return at("feature_view", err)
					}
					s.Projection = &Projection{ViewName: fv.Name, Columns: fv.Features}
				case 3:
					pm, err := f.message()
					if err != nil {
						return at("feature_view_projection", err)
					}
					p, err := decodeProjection(pm)
					if err != nil {
						return at("feature_view_projection", err)
					}
					s.Projection = p
				case 2:
					return sourceField(f, &s.Request, "request_data_source")
				}
				return nil
			})
			if err != nil {
				return at("value", err)
			}
		}
		return nil
	})
	return s, err
}

func decodeFeatureService(b []byte) (*FeatureService, error) {
	s := &FeatureService{}
	err := walk(b, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			return f.str(&s.Name, "name")
		case 2:
			return f.str(&s.Project, "project")
		case 3:
			m, err := f.message()
			if err != nil {
				return at(fmt.Sprintf("features[%d]", len(s.Projections)), err)
			}
			p, err := decodeProjection(m)
			if err != nil {
				return at(fmt.Sprintf("features[%d]", len(s.Projections)), err)
			}
			s.Projections = append(s.Projections, p)
		case 4:
			return f.mapEntry(&s.Tags, "tags")
		case 5:
			return f.str(&s.Description, "description")
		case 6:
			return f.str(&s.Owner, "owner")
		case 7:
			if _, err := f.message(); err != nil {
				return at("logging_config", err)
			}
			s.Logging = true
		}
		return nil
	})
	return s, err
}

func decodeProject(b []byte) (*Project, error) {
	p := &Project{}
	err := walk(b, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			return f.str(&p.Name, "name")
		case 2:
			return f.str(&p.Description, "description")
		case 3:
			return f.mapEntry(&p.Tags, "tags")
		case 4:
			return f.str(&p.Owner, "owner")
		}
		return nil
	})
	return p, err
}

// specName finds an object's name for an error message, following path
// (field numbers of nested messages, then the string field), or "".
func specName(b []byte, path ...protowire.Number) string {
	var name string
	_ = walk(b, func(num protowire.Number, f field) error {
		if num != path[0] || f.typ != protowire.BytesType || name != "" {
			return nil
		}
		if len(path) == 1 {
			if utf8.Valid(f.b) {
				name = string(f.b)
			}
			return nil
		}
		name = specName(f.b, path[1:]...)
		return nil
	})
	return name
}

// field is one decoded field value: a varint or a length-delimited body;
// other wire types are skipped and kept only as their type.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64
	b   []byte
}

var wireTypeNames = map[protowire.Type]string{
	protowire.VarintType: "varint", protowire.Fixed32Type: "fixed32", protowire.Fixed64Type: "fixed64",
	protowire.BytesType: "length-delimited", protowire.StartGroupType: "group",
}

func (f field) wrongType(want protowire.Type) error {
	got, ok := wireTypeNames[f.typ]
	if !ok {
		got = fmt.Sprintf("wire type %d", f.typ)
	}
	return fmt.Errorf("field %d is %s, want %s", f.num, got, wireTypeNames[want])
}

// walk calls fn for every field of the message b, in order. Groups and
// fixed-width values are skipped; a malformed tag or value is an error.
func walk(b []byte, fn func(protowire.Number, field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad field tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, f); err != nil {
			return err
		}
	}
	return nil
}

func (f field) message() ([]byte, error) {
	if f.typ != protowire.BytesType {
		return nil, f.wrongType(protowire.BytesType)
	}
	return f.b, nil
}

func (f field) str(dst *string, name string) error {
	if f.typ != protowire.BytesType {
		return at(name, f.wrongType(protowire.BytesType))
	}
	if !utf8.Valid(f.b) {
		return at(name, errors.New("is not valid UTF-8"))
	}
	*dst = string(f.b)
	return nil
}

func (f field) strList(dst *[]string, name string) error {
	var s string
	if err := f.str(&s, fmt.Sprintf("%s[%d]", name, len(*dst))); err != nil {
		return err
	}
	*dst = append(*dst, s)
	return nil
}

func (f field) enum(dst *int32, name string) error {
	if f.typ != protowire.VarintType {
		return at(name, f.wrongType(protowire.VarintType))
	}
	*dst = int32(f.u)
	return nil
}

func (f field) boolean(dst *bool, name string) error {
	if f.typ != protowire.VarintType {
		return at(name, f.wrongType(protowire.VarintType))
	}
	*dst = f.u != 0
	return nil
}

// mapEntry adds a map<string,string> entry {1: key, 2: value} to *dst.
func (f field) mapEntry(dst *map[string]string, name string) error {
	m, err := f.message()
	if err != nil {
		return at(name, err)
	}
	var k, v string
	err = walk(m, func(num protowire.Number, f field) error {
		switch num {
		case 1:
			return f.str(&k, "key")
		case 2:
			return f.str(&v, "value")
		}
		return nil
	})
	if err != nil {
		return at(name, err)
	}
	if *dst == nil {
		*dst = make(map[string]string)
	}
	(*dst)[k] = v
	return nil
}

// maxSeconds keeps durations within time.Duration.
const maxSeconds = int64(1<<63-1) / int64(time.Second)

// duration decodes a google.protobuf.Duration {1: seconds, 2: nanos}.
func (f field) duration(dst *time.Duration, name string) error {
	m, err := f.message()
	if err != nil {
		return at(name, err)
	}
	var secs, nanos int64
	err = walk(m, func(num protowire.Number, f field) error {
		if num != 1 && num != 2 {
			return nil
		}
		if f.typ != protowire.VarintType {
			return f.wrongType(protowire.VarintType)
		}
		if num == 1 {
			secs = int64(f.u)
		} else {
			nanos = int64(int32(f.u))
		}
		return nil
	})
	switch {
	case err != nil:
		return at(name, err)
	case secs < 0 || nanos < 0:
		return at(name, fmt.Errorf("is negative (%ds %dns)", secs, nanos))
	case nanos >= 1e9:
		return at(name, fmt.Errorf("nanos %d is not below one second", nanos))
	case secs >= maxSeconds:
		return at(name, fmt.Errorf("%d seconds is too long a duration", secs))
	}
	*dst = time.Duration(secs)*time.Second + time.Duration(nanos)
	return nil
}

// pathError is an error at a field path inside an object, e.g.
// spec.batch_source.file_options.uri.
type pathError struct {
	path string
	err  error
}

func (e *pathError) Error() string { return e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }

// at puts err under the field (or list element) name.
func at(name string, err error) error {
	var pe *pathError
	if errors.As(err, &pe) && pe == err {
		sep := "."
		if strings.HasPrefix(pe.path, "[") {
			sep = ""
		}
		return &pathError{path: name + sep + pe.path, err: pe.err}
	}
	return &pathError{path: name, err: err}
}
