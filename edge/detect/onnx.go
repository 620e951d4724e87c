package detect

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// onnxInput reads the name and shape of a model's image input from the
// ONNX protobuf (ModelProto.graph.input, skipping initializers that old
// exporters also list as inputs). Symbolic dimensions are -1. It runs before
// OpenCV sees the bytes, so that a file that is not an ONNX model, or is
// one for another input size, is refused with a clear error.
func onnxInput(b []byte) (string, []int64, error) {
	graph, err := field(b, 7)
	if err != nil {
		return "", nil, fmt.Errorf("not an ONNX model: %w", err)
	}
	if graph == nil {
		return "", nil, errors.New("not an ONNX model: no graph")
	}
	inits := map[string]bool{}
	var inputs [][]byte
	err = each(graph, func(num protowire.Number, v []byte) error {
		switch num {
		case 5:
			name, err := stringField(v, 8)
			inits[name] = true
			return err
		case 11:
			inputs = append(inputs, v)
		}
		return nil
	})
	if err != nil {
		return "", nil, fmt.Errorf("not an ONNX model: graph: %w", err)
	}
	for _, in := range inputs {
		name, err := stringField(in, 1)
		if err != nil {
			return "", nil, fmt.Errorf("not an ONNX model: graph input: %w", err)
		}
		if inits[name] {
			continue
		}
		dims, err := tensorDims(in)
		if err != nil {
			return "", nil, fmt.Errorf("graph input %q: %w", name, err)
		}
		return name, dims, nil
	}
	return "", nil, errors.New("the graph has no input")
}

// tensorDims reads ValueInfoProto.type.tensor_type.shape.dim[*].
func tensorDims(valueInfo []byte) ([]int64, error) {
	typ, err := field(valueInfo, 2)
	if err != nil || typ == nil {
		return nil, errors.New("no type")
	}
	tt, err := field(typ, 1)
	if err != nil || tt == nil {
		return nil, errors.New("not a tensor")
	}
	shape, err := field(tt, 2)
	if err != nil || shape == nil {
		return nil, errors.New("no shape")
	}
	var dims []int64
	err = each(shape, func(num protowire.Number, d []byte) error {
		if num != 1 {
			return nil
		}
		v := int64(-1)
		err := eachVarint(d, func(num protowire.Number, x uint64) {
			if num == 1 {
				v = int64(x)
			}
		})
		dims = append(dims, v)
		return err
	})
	return dims, err
}

// each calls fn for every length-delimited field of a message and skips
// the others.
func each(b []byte, fn func(protowire.Number, []byte) error) error {
	return walk(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		return fn(num, v)
	})
}

// eachVarint calls fn for every varint field of a message.
func eachVarint(b []byte, fn func(protowire.Number, uint64)) error {
	return walk(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.VarintType {
			return nil
		}
		x, _ := protowire.ConsumeVarint(v) // walk checked it
		fn(num, x)
		return nil
	})
}

// walk calls fn for every field of a message with the field's raw value (a
// bytes field's contents without its length).
func walk(b []byte, fn func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return protowire.ParseError(m)
		}
		v := b[:m]
		if typ == protowire.BytesType {
			v, _ = protowire.ConsumeBytes(b)
		}
		if err := fn(num, typ, v); err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}

// field returns the last occurrence of a length-delimited field, nil when absent.
func field(b []byte, want protowire.Number) ([]byte, error) {
	var out []byte
	err := each(b, func(num protowire.Number, v []byte) error {
		if num == want {
			out = v
		}
		return nil
	})
	return out, err
}

func stringField(b []byte, want protowire.Number) (string, error) {
	v, err := field(b, want)
	return string(v), err
}
