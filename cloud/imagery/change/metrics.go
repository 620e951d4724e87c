package change

import "fmt"

// Confusion counts pixels of the changed class; add pairs to pool them.
type Confusion struct {
	TP, FP, FN, TN int64
}

// Add counts pred against truth (same size).
func (c *Confusion) Add(pred, truth *Mask) error {
	if pred.W != truth.W || pred.H != truth.H {
		return fmt.Errorf("score: prediction %dx%d vs label %dx%d", pred.W, pred.H, truth.W, truth.H)
	}
	for i, p := range pred.Pix {
		t := truth.Pix[i]
		switch {
		case p != 0 && t != 0:
			c.TP++
		case p != 0:
			c.FP++
		case t != 0:
			c.FN++
		default:
			c.TN++
		}
	}
	return nil
}

// Merge adds the counts of o.
func (c *Confusion) Merge(o Confusion) {
	c.TP += o.TP
	c.FP += o.FP
	c.FN += o.FN
	c.TN += o.TN
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Precision is TP/(TP+FP); 0 when nothing was predicted.
func (c Confusion) Precision() float64 { return ratio(c.TP, c.TP+c.FP) }

// Recall is TP/(TP+FN); 0 when nothing changed.
func (c Confusion) Recall() float64 { return ratio(c.TP, c.TP+c.FN) }

// F1 is 2TP/(2TP+FP+FN), the harmonic mean of precision and recall.
func (c Confusion) F1() float64 { return ratio(2*c.TP, 2*c.TP+c.FP+c.FN) }

// IoU is TP/(TP+FP+FN) of the changed class.
func (c Confusion) IoU() float64 { return ratio(c.TP, c.TP+c.FP+c.FN) }
