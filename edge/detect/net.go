package detect

/*
#cgo pkg-config: opencv4
#cgo CXXFLAGS: -std=c++11
#include <stdlib.h>
#include "net.h"
*/
import "C"

import (
	"errors"
	"unsafe"
)

// net is an OpenCV DNN network whose failures are errors, not aborts.
type net struct{ p C.gw_net }

func readNet(model []byte) (*net, error) {
	if len(model) == 0 {
		return nil, errors.New("empty model")
	}
	var cerr *C.char
	p := C.gw_net_read((*C.char)(unsafe.Pointer(&model[0])), C.size_t(len(model)), &cerr)
	if p == nil {
		return nil, cError(cerr)
	}
	return &net{p: p}, nil
}

// forward runs a 1×c×h×w blob (C memory or a pinned Go slice) and returns
// the output and its shape.
func (n *net) forward(blob []float32, c, h, w int) ([]float32, []int, error) {
	if len(blob) != c*h*w {
		return nil, nil, errors.New("blob size does not match its shape")
	}
	var (
		out   *C.float
		dims  [8]C.int
		ndims C.int
		cerr  *C.char
	)
	total := C.gw_net_forward(n.p, (*C.float)(unsafe.Pointer(&blob[0])), C.int(c), C.int(h), C.int(w), &out, &dims[0], &ndims, &cerr)
	if total < 0 {
		return nil, nil, cError(cerr)
	}
	defer C.free(unsafe.Pointer(out))
	res := make([]float32, int(total))
	copy(res, unsafe.Slice((*float32)(unsafe.Pointer(out)), int(total)))
	shape := make([]int, int(ndims))
	for i := range shape {
		shape[i] = int(dims[i])
	}
	return res, shape, nil
}

func (n *net) close() {
	if n.p != nil {
		C.gw_net_free(n.p)
		n.p = nil
	}
}

func cError(p *C.char) error {
	if p == nil {
		return errors.New("opencv: unknown error")
	}
	defer C.free(unsafe.Pointer(p))
	return errors.New("opencv: " + C.GoString(p))
}
