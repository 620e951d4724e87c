// The few OpenCV DNN calls edge/detect needs, with C++ exceptions turned
// into error strings: gocv's own wrappers let an exception from a model
// OpenCV cannot import or run abort the whole agent.
#ifndef GRIDWATCH_DETECT_NET_H
#define GRIDWATCH_DETECT_NET_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef void *gw_net;

// gw_net_read imports an ONNX model from memory; NULL and *err (malloc'd) on failure.
gw_net gw_net_read(const char *buf, size_t len, char **err);

// gw_net_forward runs a 1×c×h×w float blob through the net. On success it
// returns the number of output floats, stores them (malloc'd) in *out and
// the output shape in dims[0..*ndims). On failure it returns -1 and *err.
long gw_net_forward(gw_net net, const float *blob, int c, int h, int w, float **out, int *dims, int *ndims, char **err);

void gw_net_free(gw_net net);

#ifdef __cplusplus
}
#endif
#endif
