"""Pose-tracking model: SpikeVideoFormer backbone + spike-driven temporal regression head.

:class:`PoseSpikeVideoFormer` maps a clip ``[B, T, C, H, W]`` to per-frame SMPL parameters and
3-D joints (docs/design.md §4.2)::

    stage 2 / 3 / 4 features [T, B, C_i, H_i, W_i]   (strides 8, 16, 16)
      → per stage g×g average pooling (4×4, 2×2, 2×2; additions only; keeps the coarse
        left/right/up/down layout), concatenated
      → LIF → Linear(ΣC_i·g_i² → D) → BN                (input projection, per frame)
      → x + BN(Conv1d_t(LIF(x)))                        (temporal block: conv over T, kernel 3)
      → x + BN(Linear(LIF(BN(Linear(LIF(x))))))         (channel MLP, ratio 2)
      → LIF → spike counts over a centred 3-frame window
            → Linear(D → 24·6 + 3) per frame:           pose (6-D rotations) and translation
      → LIF → Linear(D → 10), mean over T:               shape β (one per clip)
      → body model (built-in SimpleSkeleton, or SMPL) → joints [B, T, 24, 3] (metres)

The stride-8 stage is included because a spiking backbone trained from scratch learns the
limb layout much faster from it than from the stride-16 stages alone (measured on the
synthetic task).

Every linear / convolution of the head sees spikes (a LIF precedes it), as in the backbone's
blocks; the residual stream carries real-valued membrane inputs. All neurons are built with the
backbone's :class:`~spikevideoformer.layers.NeuronParams` (``backbone.neuron.make()``), so the
ANN counterpart (ReLU) and the "no temporal state" ablation carry over to the head. Neuron state
lives only inside one forward call.

Temporal awareness: besides the backbone's joint space-time attention and the LIF membrane
dynamics, the head's temporal block mixes neighbouring frames with a 1-D convolution over T
(non-causal, zero padded; ``temporal_kernel=1`` disables it), and the readout averages the
output spikes over a short window of frames (``readout_window``).

Initialisation: the output layers start with tiny weights and biases equal to the identity
6-D rotation, the mean shape and the mean translation, so an untrained model outputs the rest
pose (T-pose) at the mean position; :meth:`PoseSpikeVideoFormer.init_output_bias` sets training
means. The body model is *not* part of the ``state_dict`` (SMPL files are licensed and never
copied into checkpoints); it is moved with the model by ``.to()``. In the ``state_dict`` the
backbone's tensors keep the backbone's own names (``block3.0....``, no ``backbone.`` prefix;
``load_state_dict`` accepts both), so ImageNet, official or classification weights of the same
layout initialise the pose model's backbone through ``model.init``.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .rotations import matrix_to_rot6d, rot6d_to_matrix
from .skeleton import NUM_JOINTS, SimpleSkeleton

__all__ = ["PoseSpikeVideoFormer", "IDENTITY_6D", "DEFAULT_FEATURES", "count_parameters"]

#: (stage index, g) pairs: stage 2 (stride 8) pooled to 4×4, stages 3 and 4 (stride 16) to 2×2
DEFAULT_FEATURES = ((1, 4), (2, 2), (3, 2))

#: 6-D representation of the identity rotation (first two columns of I)
IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def _bn_tb(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm1d over ``[T, B, D]`` with T folded into the batch."""
    T, B, D = x.shape
    return bn(x.reshape(T * B, D)).reshape(T, B, D)


def _strip_backbone_prefix(module: nn.Module, state_dict, prefix: str, local_metadata) -> None:
    bb = prefix + "backbone."
    items = list(state_dict.items())
    state_dict.clear()
    for k, v in items:
        state_dict[prefix + k[len(bb):] if k.startswith(bb) else k] = v


def _add_backbone_prefix(module: nn.Module, state_dict, prefix: str, *args) -> None:
    bb = module.backbone
    names = set(bb._modules) | set(bb._parameters) | set(bb._buffers)
    for k in list(state_dict):
        if k.startswith(prefix) and k[len(prefix):].split(".", 1)[0] in names:
            state_dict[prefix + "backbone." + k[len(prefix):]] = state_dict.pop(k)


class PoseSpikeVideoFormer(nn.Module):
    """Backbone + temporal pose head + body model → per-frame SMPL parameters and 3-D joints.

    Args:
        backbone: a :class:`~spikevideoformer.models.SpikeVideoFormer` (its classification head
            is not used; build it with ``num_classes=0``).
        num_joints: joints of the body model (24 for SMPL and the built-in skeleton).
        num_betas: shape coefficients (10).
        hidden_dim: width ``D`` of the head; default ``max(256, C4)``.
        features: ``(stage index 0..3, g)`` pairs (index i = stage i + 1, design §2.2): which stage outputs feed the
            head and the g×g grid each is average-pooled to (``g = 1``: global mean). Default
            :data:`DEFAULT_FEATURES`: stage 2 at 4×4, stages 3 and 4 at 2×2.
        temporal_kernel: kernel size of the temporal convolution over T (odd; 1 = none).
        mlp_ratio: hidden ratio of the channel MLP.
        readout_window: the output layers read the spike counts of a centred window of this
            many frames (odd; 1 = each frame's spikes alone), which damps frame-to-frame jitter.
        body_model: ``model(pose_rotmats, betas, transl) -> joints``; default the built-in
            :class:`~.skeleton.SimpleSkeleton`; pass ``load_body_model("smpl", path)`` for SMPL.

    ``forward(video)`` returns a dict: ``pose_6d [B, T, J, 6]`` (Gram–Schmidt normalised, i.e.
    the first two columns of ``rotmats``), ``rotmats [B, T, J, 3, 3]``, ``betas [B, 10]``,
    ``transl [B, T, 3]`` and ``joints [B, T, J, 3]`` (metres).
    """

    def __init__(self, backbone: nn.Module, num_joints: int = NUM_JOINTS, num_betas: int = 10,
                 hidden_dim: Optional[int] = None,
                 features: Sequence[Tuple[int, int]] = DEFAULT_FEATURES,
                 temporal_kernel: int = 3, mlp_ratio: int = 2, readout_window: int = 3,
                 body_model: Optional[nn.Module] = None) -> None:
        super().__init__()
        if readout_window < 1 or readout_window % 2 == 0:
            raise ValueError(f"readout_window must be a positive odd number, got {readout_window}")
        self.readout_window = int(readout_window)
        if temporal_kernel < 1 or temporal_kernel % 2 == 0:
            raise ValueError(f"temporal_kernel must be a positive odd number, got {temporal_kernel}")
        self.backbone = backbone
        self.num_joints, self.num_betas = int(num_joints), int(num_betas)
        self.features = tuple((int(i), int(g)) for i, g in features)
        if not self.features or any(not 0 <= i <= 3 or g < 1 for i, g in self.features):
            raise ValueError(f"features must be (stage index 0..3, grid >= 1) pairs, got {features}")
        cin = sum(backbone.embed_dim[i] * g * g for i, g in self.features)
        c3 = backbone.embed_dim[3]
        d = int(hidden_dim or max(256, c3))
        self.hidden_dim = d
        neuron = backbone.neuron
        # input projection (per frame)
        self.proj_lif = neuron.make()
        self.proj = nn.Linear(cin, d)
        self.proj_bn = nn.BatchNorm1d(d)
        # temporal block: conv over T
        self.tconv_lif = neuron.make()
        self.tconv = nn.Conv1d(d, d, temporal_kernel, padding=temporal_kernel // 2)
        self.tconv_bn = nn.BatchNorm1d(d)
        # channel MLP
        self.fc1_lif = neuron.make()
        self.fc1 = nn.Linear(d, d * mlp_ratio)
        self.fc1_bn = nn.BatchNorm1d(d * mlp_ratio)
        self.fc2_lif = neuron.make()
        self.fc2 = nn.Linear(d * mlp_ratio, d)
        self.fc2_bn = nn.BatchNorm1d(d)
        # outputs
        self.out_lif = neuron.make()
        self.pose_out = nn.Linear(d, self.num_joints * 6 + 3)
        self.shape_lif = neuron.make()
        self.shape_out = nn.Linear(d, self.num_betas)
        self.init_output_bias()
        self.set_body_model(body_model if body_model is not None else SimpleSkeleton())
        # backbone tensors are saved/loaded under the backbone's own names (no "backbone."
        # prefix), so ImageNet / official / classification weights initialise it via model.init
        self.register_state_dict_post_hook(_strip_backbone_prefix)
        self.register_load_state_dict_pre_hook(_add_backbone_prefix)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing of the backbone's blocks (the head is not checkpointed);
        see :meth:`SpikeVideoFormer.set_grad_checkpointing`."""
        self.backbone.set_grad_checkpointing(enable)

    # ----------------------------------------------------------------- body model
    def set_body_model(self, body_model: nn.Module) -> None:
        """Use ``body_model`` to map parameters to joints (kept out of the ``state_dict``)."""
        ref = next(self.parameters(), None)
        if ref is not None:
            body_model = body_model.to(ref.device)
        # stored outside the module tree: not saved in checkpoints (SMPL is licensed data)
        self.__dict__["_body_model"] = body_model

    @property
    def body_model(self) -> nn.Module:
        return self.__dict__["_body_model"]

    def _apply(self, fn, recurse: bool = True):  # .to() / .cuda() / .double() move the body too
        super()._apply(fn, recurse)
        if "_body_model" in self.__dict__:
            self.__dict__["_body_model"]._apply(fn)
        return self

    # ----------------------------------------------------------------- init
    @torch.no_grad()
    def init_output_bias(self, betas: Optional[torch.Tensor] = None, transl: Optional[torch.Tensor] = None,
                         weight_std: float = 1e-3) -> None:
        """Start at the rest pose: tiny output weights; biases = identity rotations, ``betas``
        (default zeros = mean SMPL shape) and ``transl`` (default zeros)."""
        nn.init.normal_(self.pose_out.weight, std=weight_std)
        nn.init.normal_(self.shape_out.weight, std=weight_std)
        bias = self.pose_out.bias.view(-1)
        bias[: self.num_joints * 6] = torch.tensor(IDENTITY_6D).repeat(self.num_joints)
        bias[self.num_joints * 6:] = 0.0 if transl is None else torch.as_tensor(transl, dtype=bias.dtype)
        self.shape_out.bias.copy_(torch.zeros(self.num_betas) if betas is None
                                  else torch.as_tensor(betas, dtype=bias.dtype).reshape(-1)[: self.num_betas])

    # ----------------------------------------------------------------- forward
    def pooled_features(self, video: torch.Tensor) -> torch.Tensor:
        """Backbone features pooled per frame: ``[T, B, C·g²]`` (time major, real valued)."""
        feats = self.backbone.forward_features(video)  # each [B, T, C, H, W]
        out = []
        for i, g in self.features:
            x = feats[i]
            B, T, C, H, W = x.shape
            x = x.transpose(0, 1).reshape(T * B, C, H, W)
            x = F.adaptive_avg_pool2d(x, (g, g)) if (H, W) != (g, g) else x
            out.append(x.reshape(T, B, C * g * g))
        return torch.cat(out, dim=2) if len(out) > 1 else out[0]

    def head(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Head on pooled features ``[T, B, F]`` → ``pose_6d_raw [B,T,J,6]``, ``transl``, ``betas``."""
        T, B, _ = x.shape
        x = _bn_tb(self.proj_bn, self.proj(self.proj_lif(x)))
        s = self.tconv_lif(x)  # [T, B, D] spikes
        y = self.tconv(s.permute(1, 2, 0)).permute(2, 0, 1)  # conv over T per sample
        x = x + _bn_tb(self.tconv_bn, y)
        y = _bn_tb(self.fc1_bn, self.fc1(self.fc1_lif(x)))
        x = x + _bn_tb(self.fc2_bn, self.fc2(self.fc2_lif(y)))
        s = self.out_lif(x)
        if self.readout_window > 1:  # spike counts over a centred window of frames (additions)
            k = self.readout_window
            s = F.avg_pool1d(s.permute(1, 2, 0), k, 1, k // 2, count_include_pad=False).permute(2, 0, 1)
        out = self.pose_out(s).transpose(0, 1)  # [B, T, J*6+3]
        betas = self.shape_out(self.shape_lif(x)).mean(0)  # [B, 10], one shape per clip
        j6 = self.num_joints * 6
        return {"pose_6d_raw": out[..., :j6].reshape(B, T, self.num_joints, 6),
                "transl": out[..., j6:], "betas": betas}

    def forward(self, video: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``video [B, T, C, H, W]`` → dict of ``pose_6d``, ``rotmats``, ``betas``, ``transl``,
        ``joints`` (see the class docstring)."""
        out = self.head(self.pooled_features(video))
        rotmats = rot6d_to_matrix(out.pop("pose_6d_raw").float())
        betas, transl = out["betas"].float(), out["transl"].float()
        joints = self.body_model(rotmats, betas, transl)
        return {"pose_6d": matrix_to_rot6d(rotmats), "rotmats": rotmats, "betas": betas,
                "transl": transl, "joints": joints}

    def head_parameters(self) -> int:
        """Parameters of the pose head (everything but the backbone)."""
        return count_parameters(self) - count_parameters(self.backbone)
