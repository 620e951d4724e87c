// Package decode owns H.264 decoding on the edge box: a small cgo wrapper over
// Debian's libavcodec/libswscale (FFmpeg 5.1) that turns Annex-B access units
// into packed BGR24 frames. It is the only cgo in camera ingest; everything
// upstream (RTSP, access-unit assembly) is pure Go and hands it []byte.
//
// Two modes share one Decoder: DecodeKeyframe decodes a self-contained IDR
// access unit (SPS and PPS in front) and leaves the decoder ready for the
// next keyframe alone, which is all the cover detector needs; Decode feeds a
// continuous stream for detectors that need every frame. A Sampler (rate.go)
// drives a Decoder in the reduced-rate mode: every picture decoded, only the
// ones due at its rate converted, downscaled.
package decode

/*
#cgo pkg-config: libavcodec libavutil libswscale
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <libavcodec/avcodec.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <libavutil/pixfmt.h>
#include <libswscale/swscale.h>

typedef struct {
	AVCodecContext *ctx;
	AVPacket *pkt;
	AVFrame *frm;
	struct SwsContext *sws;
	int sws_w, sws_h, sws_fmt, sws_cs, sws_range, sws_dw, sws_dh;
	uint8_t *buf;      // padded copy of the input packet
	size_t buf_cap;
} gw_dec;

static void gw_close(gw_dec *d) {
	if (d == NULL) return;
	if (d->sws) { sws_freeContext(d->sws); d->sws = NULL; }
	if (d->frm) av_frame_free(&d->frm);
	if (d->pkt) av_packet_free(&d->pkt);
	if (d->ctx) avcodec_free_context(&d->ctx);
	av_freep(&d->buf);
	d->buf_cap = 0;
	av_free(d);
}

static int gw_open(gw_dec **out) {
	*out = NULL;
	const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_H264);
	if (codec == NULL) return AVERROR_DECODER_NOT_FOUND;
	gw_dec *d = av_mallocz(sizeof(gw_dec));
	if (d == NULL) return AVERROR(ENOMEM);
	d->ctx = avcodec_alloc_context3(codec);
	d->pkt = av_packet_alloc();
	d->frm = av_frame_alloc();
	if (d->ctx == NULL || d->pkt == NULL || d->frm == NULL) { gw_close(d); return AVERROR(ENOMEM); }
	// One thread: frame threading would delay output by thread_count frames,
	// which defeats keyframe-only decoding, and the box runs several cameras.
	d->ctx->thread_count = 1;
	int ret = avcodec_open2(d->ctx, codec, NULL);
	if (ret < 0) { gw_close(d); return ret; }
	*out = d;
	return 0;
}

// gw_reopen replaces the codec context with a fresh one. Flushing is not
// enough after a damaged stream: libavcodec keeps what it learnt from it,
// such as a longer reorder delay, which only ever grows.
static int gw_reopen(gw_dec *d) {
	const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_H264);
	if (codec == NULL) return AVERROR_DECODER_NOT_FOUND;
	AVCodecContext *ctx = avcodec_alloc_context3(codec);
	if (ctx == NULL) return AVERROR(ENOMEM);
	ctx->thread_count = 1;
	int ret = avcodec_open2(ctx, codec, NULL);
	if (ret < 0) { avcodec_free_context(&ctx); return ret; }
	av_frame_unref(d->frm);
	avcodec_free_context(&d->ctx);
	d->ctx = ctx;
	return 0;
}

// gw_send sends n bytes of Annex-B (copied, with the zero padding libavcodec
// requires) stamped with pts, or the drain signal when n == 0.
static int gw_send(gw_dec *d, const uint8_t *data, size_t n, int64_t pts) {
	if (n == 0) return avcodec_send_packet(d->ctx, NULL);
	if (n > INT_MAX - AV_INPUT_BUFFER_PADDING_SIZE) return AVERROR(EINVAL);
	if (d->buf_cap < n + AV_INPUT_BUFFER_PADDING_SIZE) {
		av_freep(&d->buf);
		d->buf_cap = 0;
		d->buf = av_malloc(n + AV_INPUT_BUFFER_PADDING_SIZE);
		if (d->buf == NULL) return AVERROR(ENOMEM);
		d->buf_cap = n + AV_INPUT_BUFFER_PADDING_SIZE;
	}
	memcpy(d->buf, data, n);
	memset(d->buf + n, 0, AV_INPUT_BUFFER_PADDING_SIZE);
	av_packet_unref(d->pkt);
	d->pkt->data = d->buf; // not ref-counted: libavcodec copies it
	d->pkt->size = (int)n;
	d->pkt->pts = pts; // libavcodec hands it back on the frame, whatever the delay
	int ret = avcodec_send_packet(d->ctx, d->pkt);
	av_packet_unref(d->pkt);
	return ret;
}

// gw_receive returns 0 with the frame's size, damage flags and pts, or a
// negative AVERROR (EAGAIN, EOF, or a real error).
static int gw_receive(gw_dec *d, int *w, int *h, int *damaged, int64_t *pts) {
	av_frame_unref(d->frm);
	int ret = avcodec_receive_frame(d->ctx, d->frm);
	if (ret < 0) return ret;
	*w = d->frm->width;
	*h = d->frm->height;
	*damaged = d->frm->decode_error_flags != 0 || (d->frm->flags & AV_FRAME_FLAG_CORRUPT) != 0;
	*pts = d->frm->best_effort_timestamp;
	return 0;
}

// gw_convert writes the received w x h frame as packed BGR24 of dw x dh
// (scaled if that differs) into dst (stride dw*3) and releases the frame.
static int gw_convert(gw_dec *d, uint8_t *dst, int w, int h, int dw, int dh) {
	AVFrame *f = d->frm;
	int ret = 0;
	if (f->width != w || f->height != h || w <= 0 || h <= 0 || dw <= 0 || dh <= 0 || f->data[0] == NULL) {
		ret = AVERROR(EINVAL);
		goto out;
	}
	int fmt = f->format;
	int range = f->color_range == AVCOL_RANGE_JPEG ||
		fmt == AV_PIX_FMT_YUVJ420P || fmt == AV_PIX_FMT_YUVJ422P || fmt == AV_PIX_FMT_YUVJ444P;
	int cs = f->colorspace == AVCOL_SPC_BT709 ? SWS_CS_ITU709 : SWS_CS_DEFAULT;
	if (d->sws == NULL || d->sws_w != w || d->sws_h != h || d->sws_fmt != fmt ||
	    d->sws_cs != cs || d->sws_range != range || d->sws_dw != dw || d->sws_dh != dh) {
		if (d->sws) { sws_freeContext(d->sws); d->sws = NULL; }
		d->sws = sws_getContext(w, h, fmt, dw, dh, AV_PIX_FMT_BGR24, SWS_BILINEAR, NULL, NULL, NULL);
		if (d->sws == NULL) { ret = AVERROR(EINVAL); goto out; }
		// Colour matrix and range from the stream; swscale assumes BT.601 limited otherwise.
		const int *coef = sws_getCoefficients(cs);
		sws_setColorspaceDetails(d->sws, coef, range, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
		d->sws_w = w; d->sws_h = h; d->sws_fmt = fmt; d->sws_cs = cs; d->sws_range = range;
		d->sws_dw = dw; d->sws_dh = dh;
	}
	uint8_t *dstData[4] = {dst, NULL, NULL, NULL};
	int dstStride[4] = {dw * 3, 0, 0, 0};
	int rows = sws_scale(d->sws, (const uint8_t *const *)f->data, f->linesize, 0, h, dstData, dstStride);
	if (rows != dh) ret = AVERROR(EINVAL);
out:
	av_frame_unref(f);
	return ret;
}

static void gw_discard(gw_dec *d) { av_frame_unref(d->frm); }
static void gw_flush(gw_dec *d) { avcodec_flush_buffers(d->ctx); }
static int gw_eagain(void) { return AVERROR(EAGAIN); }
static int gw_eof(void) { return AVERROR_EOF; }
static int64_t gw_nopts(void) { return AV_NOPTS_VALUE; }
static void gw_quiet(void) { av_log_set_level(AV_LOG_FATAL); }
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Frame is one decoded picture as packed BGR24 (the layout gocv.NewMatFromBytes
// takes for CV_8UC3). BGR has Width*Height*3 bytes and belongs to the caller.
type Frame struct {
	Width, Height int
	BGR           []byte
}

var (
	// ErrNoFrame means the input was accepted but produced no picture
	// (for example an access unit without a decodable slice).
	ErrNoFrame = errors.New("decode: no frame produced")
	// ErrDamaged means libavcodec produced a picture only by concealing
	// errors in the input (truncated or corrupt slices); it is not returned.
	ErrDamaged = errors.New("decode: damaged frame")
	// ErrClosed means the Decoder was used after Close.
	ErrClosed = errors.New("decode: decoder closed")
)

// maxDimension bounds the size we are willing to allocate for; H.264 level
// 6.2 tops out at 8192x4320.
const maxDimension = 16384

// Decoder decodes H.264. It is not safe for concurrent use: give each camera
// goroutine its own.
type Decoder struct {
	st *state
}

// state holds the C side separately from Decoder so that a cleanup can free it
// if a Decoder is dropped without Close.
type state struct {
	d *C.gw_dec
}

func (s *state) free() {
	if s.d != nil {
		C.gw_close(s.d)
		s.d = nil
	}
}

var quietOnce sync.Once

// NewH264 opens a single-threaded H.264 decoder.
//
// The first call lowers libav's process-wide log level to fatal: every problem
// is returned as a Go error, and libavcodec's own per-slice complaints about a
// damaged stream would otherwise flood the box's stderr.
func NewH264() (*Decoder, error) {
	quietOnce.Do(func() { C.gw_quiet() })
	st := &state{}
	if ret := C.gw_open(&st.d); ret < 0 {
		return nil, avError("open h264 decoder", ret)
	}
	d := &Decoder{st: st}
	runtime.AddCleanup(d, func(s *state) { s.free() }, st)
	return d, nil
}

// Close frees the decoder. It is safe to call more than once.
func (d *Decoder) Close() {
	if d == nil || d.st == nil {
		return
	}
	d.st.free()
}

func (d *Decoder) handle() (*C.gw_dec, error) {
	if d == nil || d.st == nil || d.st.d == nil {
		return nil, ErrClosed
	}
	return d.st.d, nil
}

// DecodeKeyframe decodes one self-contained keyframe: an IDR access unit in
// Annex-B with SPS and PPS in front. It drains the decoder and flushes it
// afterwards, so each call stands alone and the picture comes out without
// waiting for the next frame. (libavcodec keeps the last SPS/PPS across
// flushes, so a bare IDR after a full one also decodes; don't rely on it.)
//
// A truncated or corrupt unit gives an error (often ErrDamaged: libavcodec
// would have concealed the missing macroblocks), never a half-grey picture.
func (d *Decoder) DecodeKeyframe(annexB []byte) (Frame, error) {
	h, err := d.handle()
	if err != nil {
		return Frame{}, err
	}
	if len(annexB) == 0 {
		return Frame{}, fmt.Errorf("h264 keyframe: %w", ErrNoFrame)
	}
	defer C.gw_flush(h)
	if ret := send(h, annexB); ret < 0 {
		return Frame{}, avError("h264 keyframe: send", ret)
	}
	if ret := C.gw_send(h, nil, 0, C.gw_nopts()); ret < 0 {
		return Frame{}, avError("h264 keyframe: drain", ret)
	}
	var (
		out     Frame
		got     bool
		damaged bool
	)
	for {
		f, ok, bad, err := receive(h, !got)
		if err != nil {
			return Frame{}, fmt.Errorf("h264 keyframe: %w", err)
		}
		if !ok {
			break
		}
		if bad {
			damaged = true
			continue
		}
		if !got {
			out, got = f, true
		}
	}
	if !got {
		if damaged {
			return Frame{}, fmt.Errorf("h264 keyframe: %w", ErrDamaged)
		}
		return Frame{}, fmt.Errorf("h264 keyframe: %w", ErrNoFrame)
	}
	return out, nil
}

// Decode feeds one access unit of a continuous stream and returns the
// pictures that became ready (possibly none: the decoder may hold frames back
// for reordering). A damaged picture is left out and reported as ErrDamaged
// alongside any good ones; the decoder stays usable after any error.
func (d *Decoder) Decode(annexB []byte) ([]Frame, error) {
	h, err := d.handle()
	if err != nil {
		return nil, err
	}
	if len(annexB) == 0 {
		return nil, nil
	}
	if ret := send(h, annexB); ret < 0 {
		return nil, avError("h264: send", ret)
	}
	return collect(h, "h264")
}

// Flush returns the pictures the decoder still holds at the end of a stream
// and resets it for a new one.
func (d *Decoder) Flush() ([]Frame, error) {
	h, err := d.handle()
	if err != nil {
		return nil, err
	}
	defer C.gw_flush(h)
	if ret := C.gw_send(h, nil, 0, C.gw_nopts()); ret < 0 {
		return nil, avError("h264 flush: drain", ret)
	}
	return collect(h, "h264 flush")
}

func collect(h *C.gw_dec, op string) ([]Frame, error) {
	var (
		frames  []Frame
		damaged bool
	)
	for {
		f, ok, bad, err := receive(h, true)
		if err != nil {
			return frames, fmt.Errorf("%s: %w", op, err)
		}
		if !ok {
			break
		}
		if bad {
			damaged = true
			continue
		}
		frames = append(frames, f)
	}
	if damaged {
		return frames, fmt.Errorf("%s: %w", op, ErrDamaged)
	}
	return frames, nil
}

func send(h *C.gw_dec, annexB []byte) C.int { return sendAt(h, annexB, C.gw_nopts()) }

func sendAt(h *C.gw_dec, annexB []byte, pts C.int64_t) C.int {
	// Passing the Go slice is fine: gw_send copies it before returning.
	return C.gw_send(h, (*C.uint8_t)(unsafe.Pointer(&annexB[0])), C.size_t(len(annexB)), pts)
}

// receive takes the next picture out of the decoder. ok is false when there
// is none left (EAGAIN or EOF). With convert false the picture is discarded.
func receive(h *C.gw_dec, convert bool) (f Frame, ok, damaged bool, err error) {
	due := never
	if convert {
		due = nil
	}
	f, _, ok, damaged, err = receiveScaled(h, due, 0)
	return f, ok, damaged, err
}

func never(time.Duration) bool { return false }

// receiveScaled is receive for the Sampler: an intact picture is converted
// only if due is nil or due(its pts) says so, and then to width pixels wide
// (see scaledSize); otherwise it is discarded before any conversion.
func receiveScaled(h *C.gw_dec, due func(pts time.Duration) bool, width int) (f Frame, pts time.Duration, ok, damaged bool, err error) {
	var (
		w, ht, bad C.int
		raw        C.int64_t
	)
	ret := C.gw_receive(h, &w, &ht, &bad, &raw)
	if ret == C.gw_eagain() || ret == C.gw_eof() {
		return Frame{}, 0, false, false, nil
	}
	if ret < 0 {
		return Frame{}, 0, false, false, avError("receive", ret)
	}
	pts = time.Duration(raw) // AV_NOPTS_VALUE is math.MinInt64: noPTS
	if bad != 0 || (due != nil && !due(pts)) {
		C.gw_discard(h)
		return Frame{}, pts, true, bad != 0, nil
	}
	width0, height0 := int(w), int(ht)
	if width0 <= 0 || height0 <= 0 || width0 > maxDimension || height0 > maxDimension {
		C.gw_discard(h)
		return Frame{}, pts, false, false, fmt.Errorf("frame size %dx%d out of range", width0, height0)
	}
	dw, dh := scaledSize(width0, height0, width)
	n := dw * dh * 3
	// A little slack past the end in case a SIMD path of swscale stores a few
	// bytes beyond the last pixel; the caller only sees n bytes.
	buf := make([]byte, n+64)
	if ret := C.gw_convert(h, (*C.uint8_t)(unsafe.Pointer(&buf[0])), w, ht, C.int(dw), C.int(dh)); ret < 0 {
		return Frame{}, pts, false, false, avError("convert to bgr24", ret)
	}
	return Frame{Width: dw, Height: dh, BGR: buf[:n:n]}, pts, true, false, nil
}

// decodeSampled feeds one access unit stamped with pts and returns the
// pictures that due picks, converted to width pixels wide; the others are
// decoded (later pictures need them) but never converted. Errors as Decode.
func (d *Decoder) decodeSampled(annexB []byte, pts time.Duration, due func(time.Duration) bool, width int) ([]Sample, error) {
	h, err := d.handle()
	if err != nil {
		return nil, err
	}
	if len(annexB) == 0 {
		return nil, nil
	}
	if ret := sendAt(h, annexB, C.int64_t(pts)); ret < 0 {
		return nil, avError("h264 sampled: send", ret)
	}
	var (
		out     []Sample
		damaged bool
	)
	for {
		f, at, ok, bad, err := receiveScaled(h, due, width)
		if err != nil {
			return out, fmt.Errorf("h264 sampled: %w", err)
		}
		if !ok {
			break
		}
		if bad {
			damaged = true
			continue
		}
		if f.BGR != nil {
			out = append(out, Sample{Frame: f, PTS: at})
		}
	}
	if damaged {
		return out, fmt.Errorf("h264 sampled: %w", ErrDamaged)
	}
	return out, nil
}

// reset drops every picture and reference the decoder holds, unconverted.
func (d *Decoder) reset() {
	if h, err := d.handle(); err == nil {
		C.gw_flush(h)
	}
}

// reopen starts the decoder over from nothing (see gw_reopen).
func (d *Decoder) reopen() error {
	h, err := d.handle()
	if err != nil {
		return err
	}
	if ret := C.gw_reopen(h); ret < 0 {
		return avError("reopen h264 decoder", ret)
	}
	return nil
}

func avError(op string, code C.int) error {
	var buf [128]C.char
	if C.av_strerror(code, &buf[0], C.size_t(len(buf))) < 0 {
		return fmt.Errorf("%s: libav error %d", op, int(code))
	}
	return fmt.Errorf("%s: %s", op, C.GoString(&buf[0]))
}
