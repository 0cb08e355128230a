"""Configs of the diffusion world model, its sampling settings and its named sizes (``PRESETS``).

One dataclass per part: :class:`DiTConfig` (the backbone), :class:`EDMConfig` (noise levels and preconditioning),
:class:`WorldModelConfig` (both, plus how Text2World / Video2World training draws its conditions) and
:class:`SamplingConfig` (how generation samples). Presets are shared by the CLI, the tests and the benchmarks:

=======  =====  =====  =====  ==========  ==============================================
preset   width  depth  heads  AdaLN-LoRA  use
=======  =====  =====  =====  ==========  ==============================================
tiny     64     2      4      16          tests, seconds on a CPU
small    192    6      6      64          64x64 simulated worlds on a 2-core CPU
base     768    12     12     256         a single GPU
2b       2048   28     16     256         Cosmos-Predict2-2B widths, GPU cluster
=======  =====  =====  =====  ==========  ==============================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worldsmith.conditioning.camera import REFERENCES
from worldsmith.conditioning.origin import MODES as TRAVEL_MODES
from worldsmith.errors import ConfigError
from worldsmith.nn.lora import LoRAConfig


@dataclass
class DiTConfig:
    latent_channels: int = 16  # channels of the tokenizer's continuous latents (set from the tokenizer)
    patch: int = 2  # spatial patch; the temporal patch is 1 (Cosmos: patch 1x2x2)
    width: int = 384  # token width D
    depth: int = 12  # transformer blocks
    heads: int = 6  # attention heads; head width D / heads must be even and >= 12 (3D RoPE splits it in three)
    mlp_ratio: float = 4.0
    adaln_lora_dim: int = 256  # rank of the AdaLN-LoRA modulation
    text_dim: int = 384  # width of the text encoder's token states (MiniLM: 384)
    cond_mask_channel: bool = True  # concatenate the Video2World condition mask as an input channel
    local_mixing: bool = False  # a depthwise 3x3 convolution over the token grid in every MLP (Mix-FFN)
    anchor_frames: int = 0  # concatenate the last N given latent frames to every frame's input (frame stacking)
    # Video2World: the blocks run on the first generated latent frame of each sample only; the given frames reach it
    # through frame stacking (anchor_frames), so a step costs one frame instead of the window (DIAMOND's shape)
    next_frame_only: bool = False
    abs_pos: bool = True  # add a learnable absolute position embedding (factorized over t, h, w) to RoPE
    max_latent: tuple[int, int, int] = (32, 64, 64)  # (T', H', W') the absolute embedding covers, in latents
    rope_theta: float = 10000.0
    rope_fps: float = 6.0  # latent fps at which one latent frame is one RoPE step (24 fps / 4); 0: no scaling

    def __post_init__(self) -> None:
        self.max_latent = tuple(self.max_latent)  # type: ignore[assignment]
        positive = {"latent_channels": self.latent_channels, "patch": self.patch, "width": self.width,
                    "depth": self.depth, "heads": self.heads, "adaln_lora_dim": self.adaln_lora_dim,
                    "text_dim": self.text_dim, "mlp_ratio": self.mlp_ratio}  # fmt: skip
        if self.anchor_frames < 0:
            raise ConfigError(f"model.dit.anchor_frames must be >= 0, got {self.anchor_frames}.")
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"model.dit.{name} must be positive, got {value}.")
        if self.width % self.heads or (self.width // self.heads) % 2 or self.width // self.heads < 12:
            raise ConfigError(f"model.dit.width ({self.width}) / heads ({self.heads}) must be an even head width "
                              f">= 12 so 3D RoPE can split it over t, h and w.")  # fmt: skip
        if len(self.max_latent) != 3 or min(self.max_latent) < 1:
            raise ConfigError(f"model.dit.max_latent must be three positive sizes (T', H', W'), got {self.max_latent}.")
        if self.rope_fps < 0 or self.rope_theta <= 1:
            raise ConfigError("model.dit.rope_fps must be >= 0 and model.dit.rope_theta > 1.")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def in_channels(self) -> int:
        """Channels entering the patch embedding: latents (+ the condition mask)."""
        return self.latent_channels + int(self.cond_mask_channel)


@dataclass
class EDMConfig:
    """Karras et al. 2022 (arXiv 2206.00364), Table 1: preconditioning, training noise levels, sampling schedule."""

    sigma_data: float = 0.5  # std of the (normalised) latents
    p_mean: float = -0.4  # training: ln(sigma) ~ N(p_mean, p_std^2); EDM images use -1.2; video wants more noise
    p_std: float = 1.2
    sigma_min: float = 0.002  # sampling schedule range
    sigma_max: float = 80.0
    rho: float = 7.0  # schedule curvature (EDM eq. 5)

    def __post_init__(self) -> None:
        if not (self.sigma_data > 0 and self.p_std > 0 and 0 < self.sigma_min < self.sigma_max and self.rho > 0):
            raise ConfigError("model.edm needs sigma_data > 0, p_std > 0, 0 < sigma_min < sigma_max and rho > 0.")


@dataclass
class WorldModelConfig:
    dit: DiTConfig = field(default_factory=DiTConfig)
    edm: EDMConfig = field(default_factory=EDMConfig)
    caption_dropout: float = 0.2  # probability of training a sample without its caption (for guidance)
    video2world_prob: float = 0.5  # probability of a Video2World sample (else Text2World) in joint training
    max_cond_latents: int = 2  # Video2World conditions on 1..max_cond_latents first latent frames
    cond_sigma_mean: float = -3.0  # noise augmentation of condition frames: ln(sigma) ~ N(mean, std^2)
    cond_sigma_std: float = 0.5
    cond_sigma: float = 0.05  # noise augmentation of condition frames at generation (~ exp(cond_sigma_mean))
    # Video2World: generate each new latent frame as its difference from the last given frame, scaled to the
    # std the model works in (residual_scale, measured on the data): copying the context is then the zero output
    residual: bool = False
    action_dim: int = 0  # actions per transition (e.g. 7 for the arm); 0: no action conditioning
    action_chunk: int = 1  # video frames (actions, ego states) per latent frame: the tokenizer's temporal compression (set at training)
    camera: bool = False  # camera control: Plücker rays of each latent frame's pose (conditioning/camera.py)
    camera_stride: int = 0  # image pixels per latent pixel: the tokenizer's spatial compression (set at training)
    camera_every_block: bool = False  # rays projected into every block (cosmos-predict2) instead of the input tokens
    # poses relative to the window's first latent frame ("first"), or each to the frame before it ("previous": the
    # step's camera motion, for step-by-step models)
    camera_reference: str = "first"
    # the first frame warped along the camera path by geometry (conditioning/warp.py: the ground plane, the rest at
    # infinity) as a condition and as the residual's anchor: the model generates what the warp gets wrong. Needs a
    # camera-controlled residual next-frame-only model; data.warp caches the warped latents with the clips
    warp: bool = False
    # where a path given relative to its first camera starts above the ground (height m, pitch degrees; set at
    # training: the medians of the training clips' first cameras); height 0: unknown (the warp is the rotation alone)
    warp_height: float = 0.0
    warp_pitch: float = 0.0
    # a multi-view warp model's rig, measured on its training clips (set at training): each view's camera-to-car pose
    # (16 numbers) and intrinsics (9) at data.size, so generation places every camera along the ego trajectory
    rig_mounts: list = field(default_factory=list)
    rig_intrinsics: list = field(default_factory=list)
    views: int = 0  # multi-view: the most synchronized views the model knows (a learned embedding each); 0: one camera
    trajectory: bool = False  # condition on the ego trajectory (states per video frame, conditioning/views.py)
    # ego states relative to the window's first frame ("first"), or each to the frame before it ("previous")
    trajectory_reference: str = "first"
    lora: LoRAConfig = field(default_factory=LoRAConfig)  # rank > 0: post-train low-rank adapters of the blocks only
    # rollout training (self-forcing): a batch's context is the model's own prediction up to this many steps deep
    # (uniform in 0..rollout_depth per batch, rollout_steps Euler steps each, no gradient); the target stays true.
    # Needs next_frame_only and data.window = the model's window + rollout_depth (losses.rollout_world_model_loss)
    rollout_depth: int = 0
    rollout_steps: int = 1  # Euler steps of each frame rollout training generates (a rollout's own sampler steps)
    # the rollout's origin (conditioning/origin.py): its first frame and the actions accumulated since, for origins up
    # to this many latent frames back (0: none). Needs an action-conditioned next-frame-only model and cached latents
    origin: int = 0
    travel: str = "sum"  # how the actions accumulate: "sum", or "pose" (end-effector deltas in its own frame: the arm)
    # the commanded fingertip drawn on the token grid (conditioning/tip.py): its distance (m) along the end effector's
    # x axis from the pose the clips record (the arm: 0.03); 0: off. Needs model.origin and model.travel: pose
    tip: float = 0.0
    # motion-weighted loss: each latent position of a generated frame weighs 1 + motion_weight * (its change from the
    # frame before / the sample's mean change), renormalised to a mean of 1 per sample (losses.motion_weights), so
    # the few positions that move (a pushed object) count beside the static background; 0: the plain EDM loss
    motion_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in ("caption_dropout", "video2world_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1], got {getattr(self, name)}.")
        if self.max_cond_latents < 1 or self.cond_sigma_std < 0 or self.cond_sigma <= 0:
            raise ConfigError("model.max_cond_latents >= 1, model.cond_sigma_std >= 0 and model.cond_sigma > 0 are required.")
        if self.camera_stride < 0:
            raise ConfigError(f"model.camera_stride must be >= 0 (0: set from the tokenizer), got {self.camera_stride}.")
        for name in ("camera_reference", "trajectory_reference"):
            if getattr(self, name) not in REFERENCES:
                raise ConfigError(f"model.{name} must be one of {', '.join(REFERENCES)}, got {getattr(self, name)!r}.")
        if self.views < 0:
            raise ConfigError(f"model.views must be >= 0 (0: a single-camera model), got {self.views}.")
        if self.action_dim < 0 or self.action_chunk < 1:
            raise ConfigError("model.action_dim >= 0 and model.action_chunk >= 1 are required.")
        if self.dit.next_frame_only and (self.video2world_prob < 1 or self.dit.anchor_frames < 1):
            raise ConfigError("model.dit.next_frame_only sees the given frames through frame stacking only: it needs "
                              "model.dit.anchor_frames >= 1 and model.video2world_prob: 1.")  # fmt: skip
        if self.rollout_depth < 0 or (self.rollout_depth and not self.dit.next_frame_only):
            raise ConfigError("model.rollout_depth must be >= 0, and > 0 needs model.dit.next_frame_only: true (it "
                              "trains the one frame after a generated context).")  # fmt: skip
        if self.motion_weight < 0:
            raise ConfigError(f"model.motion_weight must be >= 0 (0: the plain EDM loss), got {self.motion_weight}.")
        if self.rollout_steps < 1:
            raise ConfigError(f"model.rollout_steps must be >= 1, got {self.rollout_steps}.")
        if self.origin < 0 or (self.origin and not (self.action_dim and self.dit.next_frame_only)):
            raise ConfigError(f"model.origin must be >= 0, and > 0 needs an action-conditioned model (model.action_dim "
                              f"set to the clips' action width, e.g. --set model.action_dim=7 for the arm) with "
                              f"model.dit.next_frame_only: true; got origin {self.origin}, action_dim "
                              f"{self.action_dim}.")  # fmt: skip
        if self.origin and self.origin <= self.max_cond_latents:
            raise ConfigError(f"model.origin ({self.origin}) must reach past the model's context: more than "
                              f"model.max_cond_latents ({self.max_cond_latents}) latent frames.")  # fmt: skip
        if self.travel not in TRAVEL_MODES or (self.travel == "pose" and 0 < self.action_dim < 6):
            raise ConfigError(f"model.travel must be one of {', '.join(TRAVEL_MODES)} (pose needs actions of at least "
                              f"6 numbers: translation, rotation vector), got {self.travel!r}.")  # fmt: skip
        if self.tip < 0 or (self.tip and not (self.origin and self.travel == "pose")):
            raise ConfigError(f"model.tip must be >= 0, and > 0 composes the origin's pose with the travel: it needs "
                              f"model.origin > 0 and model.travel: pose; got {self.tip}.")  # fmt: skip
        if self.warp and not (self.residual and self.dit.next_frame_only):
            raise ConfigError("model.warp anchors each new frame at the first frame warped along the camera path: it "
                              "needs model.residual and model.dit.next_frame_only (`worldsmith posttrain camera` from "
                              "a base with frame stacking; the clips' cameras: data.camera).")  # fmt: skip
        if self.warp and self.views and not self.trajectory:
            raise ConfigError("a multi-view model.warp carries each view along the ego trajectory: it needs "
                              "model.trajectory (`worldsmith posttrain views` on clips with an ego array).")  # fmt: skip
        if len(self.rig_mounts) != len(self.rig_intrinsics) or any(
                len(m) != 16 for m in self.rig_mounts) or any(len(k) != 9 for k in self.rig_intrinsics):  # fmt: skip
            raise ConfigError("model.rig_mounts and model.rig_intrinsics are one 4x4 pose (16 numbers) and one 3x3 "
                              "matrix (9) per view, set at training; leave them empty.")  # fmt: skip
        if self.video2world_prob > 0 and not self.dit.cond_mask_channel:
            raise ConfigError("Video2World training needs model.dit.cond_mask_channel: true (or video2world_prob: 0).")


@dataclass
class SamplingConfig:
    """How a video is sampled (``worldsmith generate --steps/--guidance/--sampler/--negative-prompt``)."""

    steps: int = 10  # sampler steps (dpm++2m: 10 is plenty; heun: ~35)
    guidance: float = 1.0  # classifier-free guidance scale; 1 = conditional prediction only
    sampler: str = "dpm++2m"  # euler | heun | dpm++2m
    negative_prompt: str | None = None  # the unconditional branch of guidance; None = no text
    context: int = 0  # latent frames an action rollout conditions on (0: as many as the model was trained with)
    context_sigma: float = 0.0  # noise augmentation of the context frames (0: the model's cond_sigma)
    # guidance on the actions / camera / trajectory instead of the text: D = D_without + w (D_with - D_without), where
    # "without" drops those embedders' contributions; 1 = none (benchmarks/RESULTS.md: condition guidance)
    condition_guidance: float = 1.0
    # the noise level sampling starts from (0: the model's edm.sigma_max). A residual model starts at its anchor (the
    # last given frame, or the warp), so a low start keeps more of it: SDEdit from the anchor (RESULTS.md: "Sampling
    # from the warp")
    sigma_max: float = 0.0

    def __post_init__(self) -> None:
        if self.context < 0 or self.context_sigma < 0 or not self.sigma_max >= 0:
            raise ConfigError("sampling needs context >= 0, context_sigma >= 0 and sigma_max >= 0 (0: the model's own).")
        if self.steps < 1 or not self.guidance >= 0:
            raise ConfigError(f"sampling needs steps >= 1 and guidance >= 0, got {self.steps} and {self.guidance}.")
        if not self.condition_guidance >= 0 or (self.condition_guidance != 1.0 and self.guidance != 1.0):
            raise ConfigError(f"sampling takes one guidance at a time, on the text (guidance) or on the actions, camera "
                              f"or trajectory (condition_guidance >= 0); got {self.guidance} and {self.condition_guidance}.")
        if self.sampler not in ("euler", "heun", "dpm++2m"):
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose one of: euler, heun, dpm++2m.")


def _preset(width: int, depth: int, heads: int, lora: int) -> WorldModelConfig:
    return WorldModelConfig(dit=DiTConfig(width=width, depth=depth, heads=heads, adaln_lora_dim=lora))


PRESETS = {  # name -> model config (width, depth, heads, AdaLN-LoRA rank)
    "tiny": lambda: _preset(64, 2, 4, 16),
    "small": lambda: _preset(192, 6, 6, 64),
    "base": lambda: _preset(768, 12, 12, 256),
    "2b": lambda: _preset(2048, 28, 16, 256),
}
