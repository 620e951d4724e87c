#include <cstdlib>
#include <cstring>
#include <string>
#include <opencv2/dnn.hpp>
#include "net.h"

static char *copy_message(const std::string &s) {
	char *p = static_cast<char *>(malloc(s.size() + 1));
	if (p) memcpy(p, s.c_str(), s.size() + 1);
	return p;
}

gw_net gw_net_read(const char *buf, size_t len, char **err) {
	try {
		cv::dnn::Net net = cv::dnn::readNetFromONNX(buf, len);
		if (net.empty()) {
			*err = copy_message("the model has no layers");
			return NULL;
		}
		net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
		net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
		return new cv::dnn::Net(net);
	} catch (const cv::Exception &e) {
		*err = copy_message(e.err.empty() ? e.what() : e.err);
	} catch (const std::exception &e) {
		*err = copy_message(e.what());
	}
	return NULL;
}

long gw_net_forward(gw_net p, const float *blob, int c, int h, int w, float **out, int *dims, int *ndims, char **err) {
	try {
		cv::dnn::Net *net = static_cast<cv::dnn::Net *>(p);
		int size[4] = {1, c, h, w};
		cv::Mat in(4, size, CV_32F, const_cast<float *>(blob));
		net->setInput(in);
		cv::Mat o = net->forward();
		if (o.type() != CV_32F) {
			*err = copy_message("the output is not float32");
			return -1;
		}
		if (o.dims > 8) {
			*err = copy_message("the output has more than 8 dimensions");
			return -1;
		}
		if (!o.isContinuous()) o = o.clone();
		*ndims = o.dims;
		for (int i = 0; i < o.dims; i++) dims[i] = o.size[i];
		size_t n = o.total();
		*out = static_cast<float *>(malloc(n * sizeof(float) + 1));
		if (!*out) {
			*err = copy_message("out of memory");
			return -1;
		}
		memcpy(*out, o.ptr<float>(), n * sizeof(float));
		return static_cast<long>(n);
	} catch (const cv::Exception &e) {
		*err = copy_message(e.err.empty() ? e.what() : e.err);
	} catch (const std::exception &e) {
		*err = copy_message(e.what());
	}
	return -1;
}

void gw_net_free(gw_net p) { delete static_cast<cv::dnn::Net *>(p); }
