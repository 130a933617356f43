"""Classification losses over class indices: ``cross_entropy`` (one fused op) and ``nll_loss``.

The fused op computes log-softmax and the negative log-likelihood in one pass and keeps
the log-probabilities, so its gradient ``(softmax - target distribution) * g / N`` costs
a few elementwise ops instead of a whole log-softmax graph.
"""
from __future__ import annotations

from ..autograd.grad_mode import is_grad_enabled
from ..backend import device_of, errstate
from ..dtypes import is_float
from ..ops._util import Op, OpError, Tensor, _wrap, as_tensor_arg, describe
from ._util import check_reduction

__all__ = ["cross_entropy", "nll_loss"]

class _IndexLoss(Op):
    """Shared forward bookkeeping: which targets count, their class weights, the reduction denominator."""

    def _targets(self, logp, t, weight, ignore_index):
        xp = self.xp
        valid = t != ignore_index
        tc = xp.where(valid, t, 0)
        picked = xp.take_along_axis(logp, xp.expand_dims(tc, 1), axis=1)[:, 0]
        wt = valid.astype(logp.dtype) if weight is None else weight[tc] * valid
        self.tc, self.valid, self.wt = tc, valid, wt
        return picked, wt

    def _reduce(self, loss, wt, reduction):
        if reduction == "none":
            return loss
        if reduction == "sum":
            return loss.sum()
        self.denom = self.xp.asarray(wt.sum())
        with errstate(self.xp, invalid="ignore", divide="ignore"):
            return loss.sum() / self.denom

    def _one_hot(self, n_classes: int):
        """Boolean (N, C, ...) one-hot of the (ignore-cleaned) targets."""
        xp = self.xp
        tc = self.tc
        classes = xp.arange(n_classes).reshape((1, n_classes) + (1,) * (tc.ndim - 1))
        return xp.expand_dims(tc, 1) == classes

    def _scale(self, g):
        from ..ops.shape import unsqueeze
        red = self.attrs["reduction"]
        if red == "none":
            return unsqueeze(g, 1)
        if red == "mean":
            return g / _wrap(self.denom)
        return g


class CrossEntropy(_IndexLoss):
    """log_softmax over dim 1 + weighted, label-smoothed negative log-likelihood, as one op."""

    name_ = "cross_entropy"
    save_inputs = (0,)

    def forward(self, x, t, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        xp = self.xp
        z = x - x.max(axis=1, keepdims=True)
        logp = z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))
        picked, wt = self._targets(logp, t, weight, ignore_index)
        loss = -picked * wt
        if label_smoothing:
            n = x.shape[1]
            lw = logp if weight is None else logp * weight.reshape((1, n) + (1,) * (x.ndim - 2))
            loss = loss * (1 - label_smoothing) - lw.sum(axis=1) * self.valid * (label_smoothing / n)
        self.logp = logp
        return self._reduce(loss, wt, reduction)

    def backward(self, g):
        from ..ops.unary import exp
        if self.edges[0] is None:
            return None, None
        a = self.attrs
        eps, weight = a["label_smoothing"], a.get("weight")
        n = self.logp.shape[1]
        if is_grad_enabled():   # create_graph: keep the dependence of softmax on x for higher derivatives
            from ..ops.softmax import log_softmax
            logp = log_softmax(self.saved_tensors[0], 1)
        else:
            logp = _wrap(self.logp)
        p = exp(logp)
        one_hot = self._one_hot(n).astype(self.logp.dtype)
        wt = self.xp.expand_dims(self.wt, 1)
        q = one_hot * (wt * (1 - eps))
        coef = wt * (1 - eps)
        if eps:
            valid = self.xp.expand_dims(self.valid, 1).astype(self.logp.dtype)
            w_c = 1.0 if weight is None else weight.reshape((1, n) + (1,) * (self.logp.ndim - 2))
            q = q + (eps / n) * w_c * valid
            coef = coef + (eps / n) * (n if weight is None else weight.sum()) * valid
        # every target counted: the short form (checked on the host only; a GPU would have to sync for it)
        if weight is None and not eps and device_of(self.valid).type == "cpu" and bool(self.valid.all()):
            grad = p - _wrap(q)
        else:
            grad = p * _wrap(coef) - _wrap(q)
        return grad * self._scale(g), None


class NLLLoss(_IndexLoss):
    """``-input[n, target[n]] * weight[target[n]]`` with ignore_index and reduction, as one op."""

    name_ = "nll_loss"

    def forward(self, logp, t, weight=None, ignore_index=-100, reduction="mean"):
        picked, wt = self._targets(logp, t, weight, ignore_index)
        self.n_classes, self.dtype = logp.shape[1], logp.dtype
        return self._reduce(-picked * wt, wt, reduction)

    def backward(self, g):
        if self.edges[0] is None:
            return None, None
        q = self._one_hot(self.n_classes) * self.xp.expand_dims(-self.wt, 1)
        return _wrap(q.astype(self.dtype)) * self._scale(g), None


def _check_index_target(input: Tensor, target: Tensor, weight, ignore_index: int, who: str):
    """Validate (N, C, d1, ...) input, integer (N, d1, ...) target in range and a (C,) weight."""
    shape = tuple(input.shape)
    if not is_float(input.data.dtype):
        raise OpError(f"{who}: expected a floating point input, got {describe((input,))}")
    if len(shape) == 0:
        raise OpError(f"{who}: input must have at least 1 dim (C,) or 2 dims (N, C, ...), got a 0-d tensor")
    expected = () if len(shape) == 1 else shape[:1] + shape[2:]
    if target.data.dtype.kind not in "iu":
        raise OpError(f"{who}: expected class indices as an integer tensor of shape {expected}"
                      + (f" or class probabilities of shape {shape}" if who == "cross_entropy" else "")
                      + f", got target {describe((target,))} for input {describe((input,))}")
    if tuple(target.shape) != expected:
        raise OpError(f"{who}: target of shape {tuple(target.shape)} does not match input of shape {shape}: "
                      f"expected target shape {expected} (input is (N, C, d1, ...), target (N, d1, ...))")
    n = shape[0] if len(shape) == 1 else shape[1]
    t = target.data
    if t.size:
        bad = (t != ignore_index) & ((t < 0) | (t >= n))
        if bool(bad.any()):
            v = int(t[bad].reshape(-1)[0])
            raise OpError(f"{who}: target value {v} is out of bounds for {n} classes (expected values in "
                          f"[0, {n - 1}] or ignore_index={ignore_index})")
    if weight is not None:
        return _class_weight(weight, input, n, who).data.astype(input.data.dtype, copy=False)
    return None


def _class_weight(weight, input: Tensor, n: int, who: str) -> Tensor:
    """``weight`` (a Tensor, array or list) as a Tensor of shape (C,)."""
    w = as_tensor_arg(weight, input)
    if tuple(w.shape) != (n,):
        raise OpError(f"{who}: weight must be a 1-D tensor with one value per class, expected shape ({n},), "
                      f"got {tuple(w.shape)}")
    return w


def _apply(op, input: Tensor, target: Tensor, **attrs) -> Tensor:
    """Run ``op``; an unbatched (C,) input with a 0-d target runs as a batch of one."""
    if input.ndim != 1:
        return op.apply(input, target, **attrs)
    from ..ops.shape import reshape
    out = op.apply(reshape(input, (1,) + tuple(input.shape)), reshape(target, (1,)), **attrs)
    return reshape(out, ()) if attrs["reduction"] == "none" else out


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy between logits (N, C, d1, ...) and class indices (N, d1, ...) or probabilities.

    >>> import ember
    >>> logits = ember.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    >>> ember.nn.functional.cross_entropy(logits, ember.tensor([0, 1]))
    tensor(0.2395)
    """
    check_reduction(reduction, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    if not isinstance(target, Tensor):
        target = Tensor(target)
    if target.data.dtype.kind == "f" and tuple(target.shape) == tuple(input.shape):
        return _soft_cross_entropy(input, target, weight, reduction, label_smoothing)
    w = _check_index_target(input, target, weight, ignore_index, "cross_entropy")
    return _apply(CrossEntropy, input, target, weight=w, ignore_index=ignore_index,
                  label_smoothing=float(label_smoothing), reduction=reduction)


def _soft_cross_entropy(input, target, weight, reduction, label_smoothing):
    """Cross-entropy against class probabilities: ``-sum_c w_c * target_c * log_softmax(input)_c``."""
    from ..ops.reduce import sum as _sum
    from ..ops.shape import reshape
    from ..ops.softmax import log_softmax
    if not is_float(input.data.dtype):
        raise OpError(f"cross_entropy: expected a floating point input, got {describe((input,))}")
    dim = 0 if input.ndim == 1 else 1
    n = input.shape[dim]
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / n
    prod = log_softmax(input, dim) * target
    if weight is not None:
        w = _class_weight(weight, input, n, "cross_entropy")
        prod = prod * reshape(w, (n,) + (1,) * (input.ndim - dim - 1))
    loss = -_sum(prod, dim)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return _sum(loss)
    return _sum(loss) / (input.numel() // n if input.numel() else float("nan"))


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (N, C, d1, ...) at class indices (N, d1, ...).

    >>> import ember
    >>> ember.nn.functional.nll_loss(ember.tensor([[-0.5, -1.0], [-2.0, -0.1]]), ember.tensor([0, 1]))
    tensor(0.3000)
    """
    check_reduction(reduction, "nll_loss")
    if not isinstance(target, Tensor):
        target = Tensor(target)
    w = _check_index_target(input, target, weight, ignore_index, "nll_loss")
    return _apply(NLLLoss, input, target, weight=w, ignore_index=ignore_index, reduction=reduction)
