"""Peak accelerator memory per device for a method on a model: the physics, component by component.

Formulas and their sources are in ../shared/docs/memory-model.md (sections 2 and 7). All sizes are bytes
until `GB` at the end; 1 GB = 10^9 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from adaptkit.errors import InputError
from adaptkit.estimator.architectures import ROLE_ALIASES, Architecture

GB = 1e9
OBJECTIVES = ("sft", "preference", "rl", "serve")  # supervised targets, chosen/rejected pairs, RL on rollouts, or inference only
PRECISIONS = ("fp32", "bf16-mixed", "bf16")
QUANTIZATIONS = ("none", "8bit", "4bit")
OPTIMIZERS = ("adamw", "adamw8bit", "adafactor", "sgd")
SHARDINGS = ("none", "zero2", "zero3", "fsdp")
ADAPTERS = ("lora", "ia3", "soft_prompt", "none")  # none: all weights train

CUDA_CONTEXT_GB = 0.5  # CUDA context and kernels: 0.3-1.3 GB depending on driver and lazy loading
ALLOCATOR_SLACK = 0.10  # reserved-but-unused memory of PyTorch's caching allocator, as a share of live tensors
NF4_BYTES = 4.127 / 8  # NF4 with double quantization: 4 bits + 0.127 bit of block constants per weight
INT8_BYTES = 1.0
STATE_BYTES = {  # optimizer bytes per trainable parameter, by precision of the states
    ("adamw", 4): 8, ("adamw", 2): 4, ("adamw8bit", 4): 2, ("adamw8bit", 2): 2,
    ("adafactor", 4): 0, ("adafactor", 2): 0,  # factored second moments: a row and a column per matrix (well under 1%), no momentum
    ("sgd", 4): 0, ("sgd", 2): 0,  # transformers' optim=sgd: torch SGD without momentum keeps no state
}
COMPONENTS = (
    "weights", "master_weights", "gradients", "optimizer_states", "adapters", "activations", "logits",
    "reference_model", "reward_model", "value_model", "kv_cache", "cuda_context", "allocator_slack",
)


@dataclass(frozen=True)
class Setup:
    """How a model is trained or served. The method registry builds one from a method id or a recipe
    (adaptkit.methods.registry.setup_for / recipe_setup); the memory model reads only its traits."""

    method: str = ""  # a label for reports (the method id); nothing here depends on it
    objective: str = "sft"  # sft | preference (pairs, doubled sequences) | rl (rollouts, reward model) | serve
    adapter: str = "lora"  # lora | ia3 | soft_prompt | none (all weights train)
    precision: str | None = None  # None: bf16-mixed when all weights train, bf16 (frozen 16-bit base) otherwise
    quantization: str = "none"
    batch_size: int = 1  # micro-batch per device
    seq_len: int = 1024
    gradient_checkpointing: bool = False
    lora_r: int = 16
    lora_targets: str = "all-linear"
    modules_to_save: str = ""  # LoRA: modules trained in full beside the adapters (PEFT modules_to_save), comma-separated
    dora: bool = False  # DoRA: a trainable magnitude per output row and two saved outputs per wrapped linear and token
    soft_prompt: str = "prompt"  # prompt | prefix, when adapter is soft_prompt
    num_virtual_tokens: int = 20
    optimizer: str = "adamw"
    num_gpus: int = 1
    sharding: str = "none"
    attention: str | None = None  # sdpa | eager; None: what transformers uses for the family
    chunked_loss: bool = False
    optimizer_in_backward: bool = False
    dpo_reference: str = "auto"  # auto (adapters off for adapter DPO, a copy for full DPO) | copy | precomputed | none (ORPO, SimPO, CPO)
    rl_algorithm: str = "ppo"  # ppo (4 models) | rloo | grpo (no value model)
    rollouts_per_prompt: int = 4
    generation_tokens: int = 256
    reward_params: int | None = None  # reward model size; None: same as the policy; 0: reward functions, no model
    image_tokens: int | None = None  # a vision-language model: image tokens per example (None: one image at the model's count)
    images_in_seq: bool = False  # seq_len already holds them (resolved once)
    resolution: int | None = None  # a diffusion UNet: training images' side in pixels (None: the model's native size)
    cached_inputs: bool = False  # a diffusion UNet: latents and text embeddings computed beforehand, the VAE and text encoders off the device
    freeze_vision: bool = False  # full fine-tuning of a vision-language model with its vision tower kept frozen (weights only)

    def resolved(self, arch=None) -> "Setup":
        """Fill the default precision and reject combinations that cannot run. On an image or audio encoder (`arch`
        with input_tokens) a sequence is one input's patches or frames, whatever the recipe's max_length says; on a
        vision-language model the image tokens are added to the text's."""
        setup = replace(self, precision=self.precision or ("bf16-mixed" if self.trains_all_weights else "bf16"))
        if arch is not None and arch.input_tokens:
            setup = replace(setup, seq_len=arch.input_tokens)
        if arch is not None and arch.kind == "unet":  # a latent of resolution / 8 on a side: its pixels are the tokens
            pixels = setup.resolution or arch.sample_size * 8
            if pixels < 8 or pixels % 8:
                raise InputError(f"resolution {pixels}: a multiple of 8 pixels (the VAE's latent is an eighth on a side)")
            setup = replace(setup, resolution=pixels, seq_len=(pixels // 8) ** 2)
        if arch is not None and arch.image_tokens and not setup.images_in_seq:  # a VLM's sequence is its text and its images' tokens
            images = arch.image_tokens if setup.image_tokens is None else setup.image_tokens
            setup = replace(setup, seq_len=setup.seq_len + images, image_tokens=images, images_in_seq=True)
        setup.check()
        return setup

    def check(self) -> None:
        for name, value, allowed in (
            ("objective", self.objective, OBJECTIVES),
            ("precision", self.precision, PRECISIONS), ("quantization", self.quantization, QUANTIZATIONS),
            ("optimizer", self.optimizer, OPTIMIZERS), ("sharding", self.sharding, SHARDINGS),
            ("adapter", self.adapter, ADAPTERS), ("soft_prompt", self.soft_prompt, ("prompt", "prefix")),
            ("attention", self.attention, ("sdpa", "eager", None)), ("rl_algorithm", self.rl_algorithm, ("ppo", "rloo", "grpo")),
            ("dpo_reference", self.dpo_reference, ("auto", "copy", "precomputed", "none")),
        ):
            if value not in allowed:
                raise InputError(f"{name} `{value}` is not one of {', '.join(a for a in allowed if a)}")
        for name in ("batch_size", "seq_len", "lora_r", "num_virtual_tokens", "num_gpus", "rollouts_per_prompt", "generation_tokens"):
            if getattr(self, name) < 1:
                raise InputError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.quantization != "none" and self.trains_all_weights:
            raise InputError(f"a {self.quantization} base cannot be trained directly: use an adapter method (QLoRA) or --quantization none")
        if self.sharding != "none" and self.num_gpus < 2:
            raise InputError(f"--sharding {self.sharding} needs --num-gpus 2 or more")

    @property
    def text_tokens(self) -> int:
        """The sequence less its images' tokens (once resolved, a vision-language model's images are in seq_len)."""
        return self.seq_len - ((self.image_tokens or 0) if self.images_in_seq else 0)

    @property
    def trains(self) -> bool:
        return self.objective != "serve"

    @property
    def trains_all_weights(self) -> bool:
        """Full fine-tuning (or full-weight DPO/RLHF): every parameter gets gradients and optimizer states."""
        return self.trains and self.adapter == "none"


@dataclass
class MemoryEstimate:
    breakdown: dict[str, float]  # GB per device, one entry per component
    peak_gb: float  # what the device must hold (nvidia-smi style)
    allocated_gb: float  # live tensors at the peak (torch.cuda.max_memory_allocated style)
    total_params: int
    trainable_params: int
    assumptions: list[str] = field(default_factory=list)

    @property
    def reserved_gb(self) -> float:
        return self.allocated_gb + self.breakdown["allocator_slack"]


def lora_targets(arch: Architecture, targets: str) -> list:
    """The linear modules LoRA wraps: `all-linear` or comma-separated names (family or llama-style)."""
    linears = [(block, lin) for block in arch.blocks for lin in block.linears if not lin.fused]  # stacked experts are no nn.Linear
    if targets.strip() == "all-linear":
        return linears
    wanted = [t.strip() for t in targets.split(",") if t.strip()]
    chosen, unknown = [], []
    for name in wanted:
        role = ROLE_ALIASES.get(name)
        hits = [(b, lin) for b, lin in linears if lin.name == name or lin.name.endswith("." + name) or (role and lin.role == role)]
        if not hits and role in ("q", "k", "v"):  # fused QKV families (GPT-2, NeoX, BLOOM)
            hits = [(b, lin) for b, lin in linears if lin.role == "qkv"]
        if not hits:
            unknown.append(name)
        chosen.extend(hit for hit in hits if hit not in chosen)
    if unknown:
        raise InputError(f"--lora-targets: {', '.join(unknown)} not in {arch.name} (its modules: {', '.join(arch.module_names())}, or all-linear)")
    return chosen


def trainable_params(arch: Architecture, setup: Setup) -> int:
    """Parameters that get gradients and optimizer states."""
    if not setup.trains:
        return 0
    if setup.adapter == "soft_prompt":
        if setup.soft_prompt == "prefix":  # a key and a value vector per layer and virtual token
            return setup.num_virtual_tokens * arch.layers * 2 * arch.kv_heads * arch.head_dim
        return setup.num_virtual_tokens * arch.hidden
    if setup.adapter == "lora":
        per = (lambda lin: setup.lora_r * (lin.d_in + lin.d_out) + (lin.d_out if setup.dora else 0))
        return sum(block.count * per(lin) for block, lin in lora_targets(arch, setup.lora_targets)) + saved_modules(arch, setup)
    if setup.adapter == "ia3":  # scaling vectors on keys, values and the MLP's down-projection input
        ia3 = [(b, lin) for b in arch.blocks for lin in b.linears if lin.role in ("k", "v", "qkv", "down")]
        return sum(b.count * (lin.d_in if lin.role == "down" else (lin.d_out if lin.role != "qkv" else 2 * lin.d_out // 3)) for b, lin in ia3)
    return arch.total_params - (arch.vision_params if setup.freeze_vision else 0)


EMBEDDING_NAMES = {"embed_tokens", "wte", "word_embeddings", "embed_in", "embeddings", "tok_embeddings"}
HEAD_NAMES = {"lm_head", "embed_out", "output"}


def saved_modules(arch: Architecture, setup: Setup) -> int:
    """Parameters of the modules a LoRA run trains in full (PEFT modules_to_save): a trainable copy of the embeddings
    and of the output layer, as continued pre-training with LoRA does. Other names are not counted (small, or unknown)."""
    names = {name.strip().rpartition(".")[2] for name in setup.modules_to_save.split(",") if name.strip()}
    embeddings = arch.embedding_params if names & EMBEDDING_NAMES else 0
    head = (arch.head_params or arch.embedding_params) if names & HEAD_NAMES else 0  # a tied head still gets its own copy
    return embeddings + head


def _weight_bytes(arch: Architecture, quantization: str, dense_bytes: float) -> float:
    """Resident weight bytes: quantization packs the blocks' linear weights; embeddings, head, norms stay 16-bit."""
    if quantization == "none":
        return arch.total_params * dense_bytes
    rest = arch.total_params - arch.linear_params
    per_weight = NF4_BYTES if quantization == "4bit" else INT8_BYTES
    return arch.linear_params * per_weight + rest * 2


def _per_layer_elements(arch: Architecture, setup: Setup, seq: int, eager: bool) -> tuple[float, float]:
    """Saved activations per token for one block: (elements, 1-byte dropout-mask bytes). Korthikanti et al. 2022."""
    h, i, heads, d, kv = arch.hidden, arch.intermediate, arch.heads, arch.head_dim, arch.kv_heads
    attention = h + heads * d + 2 * kv * d + heads * d  # QKV input, Q, K, V, attention output
    mlp = h + (4 * i if arch.gated_mlp else 2 * i)  # MLP input; gate, up, activation, product (or fc1 out, act out)
    elements = 2 * h + attention + mlp  # + the two norm inputs
    if arch.kind == "encoder-decoder":
        elements += attention / 2  # decoder blocks add cross-attention; averaged over encoder and decoder blocks
    masks = 0.0
    if eager:
        elements += heads * seq  # softmax output kept for the backward pass
    if arch.dropout:
        masks = 2 * h + (heads * seq if eager else 0)
    return elements, masks


def _dora_activations(arch: Architecture, s: Setup, tokens: int, act_bytes: int) -> float:
    """DoRA's extra activation bytes. PEFT's DoRA forward keeps the base output and the LoRA output of each wrapped linear
    (d_out each per token) for the magnitude scaling; it builds the dense update B @ A (through an identity of d_in x d_in)
    and the norm of W + BA for one layer at a time. Liu et al., arXiv:2402.09353; measured with saved-tensor hooks on a
    tiny Llama (tests/test_lora_variants.py)."""
    wrapped = lora_targets(arch, s.lora_targets)
    saved = sum(block.count * 2 * lin.d_out for block, lin in wrapped)  # elements per token, over all layers
    if s.gradient_checkpointing:
        saved /= arch.layers  # only the block being recomputed holds them
    transient = max(lin.d_in * lin.d_in + 2 * lin.d_out * lin.d_in for _, lin in wrapped) if wrapped else 0
    return tokens * saved * act_bytes + transient * act_bytes


UNET_BLOCK_ELEMENTS = 22  # saved elements per latent pixel and channel of one UNet transformer block, measured with
# saved-tensor hooks on Stable Diffusion 1.5 and SDXL in diffusers 0.42 (python benchmarks/unet_activations.py); the
# tensors named in unet_activations add up to 29, but views share their storage


def unet_activations(arch: Architecture, s: Setup, act_bytes: int) -> float:
    """Saved activation bytes of a diffusion UNet's training step, summed over its units at their latent sizes. A resnet
    keeps its two GroupNorm, SiLU and convolution inputs (3 x channels in + 3 x channels out per pixel); a transformer
    keeps, per latent pixel, its GroupNorm and projection inputs (3c) and, per block, the three norm inputs,
    self-attention's input, Q, K, V and output, cross-attention's query side and the GEGLU feed-forward (input, 8c
    projection, 4c gate and product): UNET_BLOCK_ELEMENTS x c (SDPA: no attention matrix). With gradient checkpointing
    diffusers recomputes each resnet and transformer block: their inputs stay, plus the largest unit's activations
    during its recomputation."""
    side = s.resolution // 8
    saved, largest = 0.0, 0.0
    for kind, c_in, c_out, scale in arch.units:
        pixels = (side // scale) ** 2 * s.batch_size
        if kind == "resnet":
            full, kept = (3 * c_in + 3 * c_out) * pixels, c_in * pixels
        elif kind == "transformer":  # c_out: its blocks
            full, kept = (3 * c_in + UNET_BLOCK_ELEMENTS * c_in * c_out) * pixels, (2 + c_out) * c_in * pixels
            largest = max(largest, (3 + UNET_BLOCK_ELEMENTS) * c_in * pixels)
        else:
            full = kept = c_in * pixels
        saved += kept if s.gradient_checkpointing else full
        if kind == "resnet":
            largest = max(largest, full)
    return (saved + (largest if s.gradient_checkpointing else 0)) * act_bytes


def estimate_memory(arch: Architecture, setup: Setup) -> MemoryEstimate:
    """Peak memory per device for `setup` on `arch`."""
    s = setup.resolved(arch)
    notes: list[str] = []
    n = arch.total_params
    n_t = trainable_params(arch, s)
    full = s.trains_all_weights
    dense = 4 if s.precision == "fp32" else 2
    act_bytes = 4 if s.precision == "fp32" else 2
    shards = s.num_gpus if s.sharding != "none" else 1
    shard_states = s.sharding != "none"
    shard_weights = s.sharding in ("zero3", "fsdp")
    comp = dict.fromkeys(COMPONENTS, 0.0)

    # Weights (and the fp32 masters of mixed precision).
    comp["weights"] = _weight_bytes(arch, s.quantization, dense)
    if arch.companion_params and not s.cached_inputs:
        comp["weights"] += 2 * arch.companion_params
        notes.append(f"the frozen text encoders and VAE ({arch.companion_params / 1e6:,.1f}M) resident in 16 bits "
                     "(--cached-inputs: latents and text embeddings computed beforehand, off the device)")
    if s.precision == "bf16-mixed" and s.quantization == "none":
        comp["master_weights"] = 4 * (n_t if full else n)
        notes.append("bf16-mixed: fp32 weights (the masters) plus the 16-bit copies autocast keeps for the step")
    if s.quantization == "4bit":
        notes.append("4-bit NF4 with double quantization (4.127 bits/weight) on the blocks' linear layers; embeddings, head and norms stay 16-bit")
    elif s.quantization == "8bit":
        notes.append("8-bit (LLM.int8) linear weights; embeddings, head and norms stay 16-bit")

    # Gradients and optimizer states of the trainable weights.
    if full:
        grad_bytes = 4 if s.precision in ("fp32", "bf16-mixed") else 2
        state_bytes = STATE_BYTES[(s.optimizer, 4 if s.precision != "bf16" else 2)]
        if s.optimizer_in_backward:
            comp["gradients"] = grad_bytes * arch.largest_layer_params
            notes.append("optimizer step fused into backward: only one layer's gradients are live")
        else:
            comp["gradients"] = grad_bytes * n_t
            if s.num_gpus > 1 and s.sharding == "none":
                comp["gradients"] += grad_bytes * n_t
                notes.append("DDP keeps a second copy of the gradients in its communication buckets")
        comp["optimizer_states"] = state_bytes * n_t
        if s.freeze_vision and arch.vision_params:
            notes.append(f"the vision tower ({arch.vision_params / 1e6:,.1f}M) frozen: weights only, no gradients or optimizer states")
    elif s.trains:
        per = 4 + 4 + STATE_BYTES[(s.optimizer, 4)]  # adapters stay fp32: weights, gradients, states
        comp["adapters"] = per * n_t
        notes.append(f"{n_t:,} trainable adapter parameters kept in fp32 (weights, gradients, {s.optimizer} states)")
        if s.adapter == "lora" and arch.is_moe:
            notes.append("mixture of experts: LoRA counted on the attention and shared layers; PEFT may also wrap the stacked experts "
                         "(it does for Mixtral and Qwen3-MoE), which adds adapter memory: name --lora-targets to be exact")

    # Sharding over data-parallel ranks.
    if shard_states:
        for key in ("gradients", "optimizer_states", "master_weights", "adapters"):
            comp[key] /= shards
    if shard_weights:
        per_param = {"4bit": NF4_BYTES, "8bit": INT8_BYTES}.get(s.quantization, dense)
        gathered = 2 * arch.largest_layer_params * per_param  # the layer being computed plus the one prefetched
        comp["weights"] = comp["weights"] / shards + gathered
        notes.append(f"{s.sharding} over {shards} GPUs: states and weights sharded, two layers gathered at a time")
    elif shard_states:
        notes.append(f"zero2 over {shards} GPUs: gradients and optimizer states sharded, weights replicated")

    # Activations and the loss.
    eager = (s.attention or arch.attention) == "eager"
    if s.trains:
        seq = s.seq_len + (s.num_virtual_tokens if s.adapter == "soft_prompt" and s.soft_prompt == "prompt" else 0)
        sequences = s.batch_size * (2 if s.objective == "preference" else 1)
        if s.objective == "rl":
            sequences = s.batch_size * (s.rollouts_per_prompt if s.rl_algorithm in ("grpo", "rloo") else 1)
        tokens = sequences * seq
        if arch.kind == "unet":
            comp["activations"] = unet_activations(arch, s, act_bytes)
            notes.append(f"activations for {s.batch_size} image(s) of {s.resolution} px (a {s.resolution // 8} x {s.resolution // 8} latent), "
                         "SDPA attention" + ("; gradient checkpointing: each resnet's and transformer block's input saved, one "
                                             "recomputed at a time" if s.gradient_checkpointing else ""))
        else:
            elements, masks = _per_layer_elements(arch, s, seq, eager)
            per_layer = tokens * (elements * act_bytes + masks)
            if s.gradient_checkpointing:
                comp["activations"] = tokens * arch.hidden * act_bytes * arch.layers + per_layer
                notes.append("gradient checkpointing: one saved input per block plus one block recomputed at a time")
            else:
                comp["activations"] = per_layer * arch.layers
        if s.adapter == "lora" and s.dora:
            comp["activations"] += _dora_activations(arch, s, tokens, act_bytes)
            notes.append("DoRA: the base and LoRA outputs of every wrapped linear kept per token for the magnitude scaling, plus one "
                         "layer's dense update and weight norm at a time (measured on PEFT 0.21 within 2%)")
        if s.quantization != "none":
            comp["activations"] += 2 * arch.largest_linear_params  # one dequantized weight during each matmul
        if arch.kind not in ("encoder", "unet"):
            full_logits = tokens * arch.vocab_size
            if s.chunked_loss:
                comp["logits"] = full_logits * (act_bytes + 8 / 8)
                notes.append("chunked cross-entropy: logits upcast to fp32 one chunk (of 8) at a time")
            else:
                comp["logits"] = full_logits * (act_bytes + 4 + 4) if act_bytes == 2 else full_logits * 8
        if arch.kind != "unet":
            notes.append(
                f"activations for {sequences} x {seq} tokens per device, {'eager' if eager else 'SDPA/flash'} attention"
                + (", chosen and rejected both" if s.objective == "preference" else "")
                + (f", of which {s.image_tokens:,} are image tokens; the vision tower and projector ({arch.vision_params / 1e6:,.1f}M) "
                   + ("train with the rest" if s.trains_all_weights and not s.freeze_vision else "are frozen: weights only")
                   if s.images_in_seq else "")
            )
    else:
        tokens = s.batch_size * s.seq_len
        comp["kv_cache"] = 2 * arch.layers * arch.kv_heads * arch.head_dim * tokens * 2
        workspace = s.batch_size * min(s.seq_len, 2048) * (2 * arch.hidden + 2 * arch.intermediate) * 2
        if eager:
            workspace += s.batch_size * arch.heads * s.seq_len * min(s.seq_len, 2048) * 2
        comp["activations"] = workspace
        comp["logits"] = s.batch_size * arch.vocab_size * 4
        if s.num_gpus > 1:  # the model split across GPUs (device_map="auto" or tensor parallel)
            for key in ("weights", "kv_cache"):
                comp[key] /= s.num_gpus
            notes.append(f"inference split over {s.num_gpus} GPUs: weights and KV cache divided among them")
        notes.append(f"inference: KV cache for {s.batch_size} x {s.seq_len} tokens (prompt + output), 16-bit")

    # Preference tuning extras.
    frozen_copy = _weight_bytes(arch, s.quantization, 2)
    if shard_weights:
        frozen_copy /= shards
    if s.objective == "preference":
        reference = s.dpo_reference if s.dpo_reference != "auto" else ("copy" if full else "adapters_off")
        if reference == "copy":
            comp["reference_model"] = frozen_copy
            notes.append("DPO reference: a second, frozen 16-bit copy of the model")
        elif reference == "precomputed":
            notes.append("DPO reference log-probs precomputed: no reference model in the loop")
        elif reference == "none":
            notes.append("reference-free preference loss (ORPO, SimPO, CPO): no reference model")
        else:
            notes.append("DPO reference: the base with adapters disabled (no second copy)")
    if s.objective == "rl":
        reward_params = n if s.reward_params is None else s.reward_params
        comp["reward_model"] = reward_params * 2 / (shards if shard_weights else 1)
        if full:
            comp["reference_model"] = frozen_copy
        if s.rl_algorithm == "ppo":
            if full:  # a trainable value model as large as the policy
                comp["value_model"] = comp["weights"] + comp["master_weights"] + comp["gradients"] + comp["optimizer_states"]
            else:
                comp["value_model"] = comp["adapters"] + arch.hidden * 16
        rollout = s.batch_size * (s.rollouts_per_prompt if s.rl_algorithm != "ppo" else 1)
        comp["kv_cache"] = 2 * arch.layers * arch.kv_heads * arch.head_dim * rollout * (s.seq_len + s.generation_tokens) * 2
        notes.append(
            f"RLHF ({s.rl_algorithm}): policy, {'reference copy' if full else 'reference = adapters off'}, "
            + (f"reward model ({reward_params / 1e9:.2f}B, 16-bit)" if reward_params else "reward functions (no reward model)")
            + f"{', value model' if s.rl_algorithm == 'ppo' else ''};"
            " generation KV cache and training activations are not live together: the peak counts the larger"
        )

    live = {k: v for k, v in comp.items() if k not in ("cuda_context", "allocator_slack")}
    allocated = sum(live.values())
    if s.objective == "rl":
        transient = comp["activations"] + comp["logits"]
        allocated -= min(transient, comp["kv_cache"])
    comp["allocator_slack"] = ALLOCATOR_SLACK * allocated
    comp["cuda_context"] = CUDA_CONTEXT_GB * GB
    peak = allocated + comp["allocator_slack"] + comp["cuda_context"]
    notes.append(f"CUDA context {CUDA_CONTEXT_GB} GB and allocator slack {ALLOCATOR_SLACK:.0%} of live tensors; expect +-20%")
    return MemoryEstimate(
        breakdown={k: round(v / GB, 3) for k, v in comp.items()},
        peak_gb=peak / GB, allocated_gb=allocated / GB, total_params=n, trainable_params=n_t, assumptions=list(arch.notes) + notes,
    )
