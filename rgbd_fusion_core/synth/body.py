"""Synthetic people from the ``anny`` body model: adult shapes, random poses within per-joint limits, clothing
colours, and self-intersection rejection.

anny's world frame: metres, Z up, the body faces -Y, +X is the subject's left, origin at the pelvis. Pose
angles use anny's default "local-ref" parameterisation: each bone rotates about world-aligned axes through its
rest-pose head (knee bend +X, hip flexion -X, arm forward -X, raise left arm -Y / right arm +Y).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
import torch

AGE_RANGES_YEARS = {"adult": (18.0, 70.0), "wide": (10.0, 85.0)}


@dataclass(frozen=True)
class Joint:
    """One pose degree of freedom: rotation of ``bone`` about ``axis`` (world-aligned, or "elbow" for the rest-pose
    elbow hinge) by an angle in [low, high] radians drawn from a normal(mean, sigma) truncated to the limits."""

    bone: str
    axis: str
    low: float
    high: float
    mean: float = 0.0
    sigma: float = 0.3


def _mirror(joints: list[Joint]) -> list[Joint]:
    """Right-side copies of left-side joints: rotations about Y and Z change sign (X is the mirror axis)."""
    mirrored = []
    for joint in joints:
        bone = joint.bone.replace(".L", ".R")
        if joint.axis in ("y", "z"):
            mirrored.append(Joint(bone, joint.axis, -joint.high, -joint.low, -joint.mean, joint.sigma))
        else:
            mirrored.append(Joint(bone, joint.axis, joint.low, joint.high, joint.mean, joint.sigma))
    return mirrored


_LEFT_LIMBS = [
    Joint("upperleg01.L", "x", -1.2, 0.4, -0.05, 0.3),  # hip flexion (negative = leg forward)
    Joint("upperleg01.L", "y", -0.5, 0.12, -0.05, 0.15),  # abduction (negative = outward)
    Joint("upperleg01.L", "z", -0.4, 0.4, 0.0, 0.15),  # hip rotation
    Joint("lowerleg01.L", "x", 0.0, 1.6, 0.1, 0.35),  # knee bend
    Joint("foot.L", "x", -0.3, 0.4, 0.0, 0.15),  # ankle
    Joint("upperarm01.L", "y", -1.5, 0.55, 0.2, 0.5),  # raise (negative = up, positive = towards the body)
    Joint("upperarm01.L", "x", -1.5, 0.7, -0.1, 0.5),  # swing (negative = forward)
    Joint("upperarm01.L", "z", -0.5, 0.5, 0.0, 0.25),
    Joint("lowerarm01.L", "elbow", 0.0, 2.2, 0.4, 0.7),  # elbow flexion
    Joint("wrist.L", "x", -0.5, 0.5, 0.0, 0.25),
    Joint("wrist.L", "y", -0.4, 0.4, 0.0, 0.2),
]

JOINTS: tuple[Joint, ...] = tuple(
    [
        Joint("spine03", "x", -0.15, 0.35, 0.05, 0.12),  # forward bend
        Joint("spine03", "y", -0.2, 0.2, 0.0, 0.08),  # side bend
        Joint("spine03", "z", -0.35, 0.35, 0.0, 0.15),  # twist
        Joint("spine01", "x", -0.1, 0.25, 0.0, 0.08),
        Joint("neck01", "x", -0.3, 0.4, 0.05, 0.15),  # nod
        Joint("neck01", "y", -0.25, 0.25, 0.0, 0.1),  # tilt
        Joint("head", "z", -0.7, 0.7, 0.0, 0.3),  # turn
        *_LEFT_LIMBS,
        *_mirror(_LEFT_LIMBS),
    ]
)

# Colour regions by the dominant skinning bone of each vertex (first matching prefix wins).
_REGION_PREFIXES = (
    ("eyes", ("eye.",)),
    ("shoes", ("foot.", "toe")),
    ("forearm", ("lowerarm",)),
    ("hands", ("wrist.", "finger", "metacarpal")),
    ("head", ("head", "neck")),
    ("shin", ("lowerleg",)),
    ("trousers", ("pelvis", "upperleg", "root")),
    ("shirt", ("spine", "clavicle", "shoulder", "upperarm")),
)

_SKIN_TONES = np.array(  # sRGB, light to dark
    [
        [0.96, 0.82, 0.72],
        [0.90, 0.72, 0.60],
        [0.80, 0.60, 0.46],
        [0.65, 0.45, 0.32],
        [0.45, 0.30, 0.20],
        [0.30, 0.20, 0.14],
    ]
)


_HAIR_COLOURS = np.array(  # sRGB: black, dark brown, brown, auburn, blond, grey
    [[0.04, 0.03, 0.03], [0.15, 0.09, 0.06], [0.30, 0.19, 0.11]]
    + [[0.45, 0.20, 0.10], [0.75, 0.62, 0.40], [0.62, 0.60, 0.58]]
)


def _axis_angle_matrices(axes: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about unit ``axes`` (..., 3) by ``angles`` (...) radians (Rodrigues)."""
    x, y, z = axes[..., 0], axes[..., 1], axes[..., 2]
    c, s = np.cos(angles), np.sin(angles)
    t = 1.0 - c
    return np.stack(
        [
            np.stack([c + x * x * t, x * y * t - z * s, x * z * t + y * s], -1),
            np.stack([y * x * t + z * s, c + y * y * t, y * z * t - x * s], -1),
            np.stack([z * x * t - y * s, z * y * t + x * s, c + z * z * t], -1),
        ],
        -2,
    )


@dataclass(frozen=True)
class SubjectLook:
    """Per-subject appearance: ``albedo`` (V, 3) float32 sRGB in [0, 1] per vertex."""

    albedo: np.ndarray
    description: dict
    material: np.ndarray | None = None  # (V,) pattern slot per vertex (see render.Pattern), None = plain
    patterns: tuple = ()  # render.Pattern per slot


class BodyModel:
    """anny built once per process (CPU, LBS skinning) with pose sampling, colouring and collision checks."""

    def __init__(self, age_range: str = "adult"):
        import anny
        from anny.shape_distribution import SimpleShapeDistribution

        if age_range not in AGE_RANGES_YEARS:
            raise ValueError(f"unknown age range {age_range!r}; choose one of {sorted(AGE_RANGES_YEARS)}")
        self.model = anny.Anny(skinning_method="lbs")
        low, high = AGE_RANGES_YEARS[age_range]
        self.shape_distribution = SimpleShapeDistribution(
            self.model, morphological_age_distribution=torch.distributions.Uniform(low, high)
        )
        self.bone_labels = list(self.model.bone_labels)
        self.faces = np.ascontiguousarray(self.model.get_triangular_faces().cpu().numpy().astype(np.uint32))
        self._collision = None
        rest = self.model()
        self._joint_bones = np.array([self.bone_labels.index(j.bone) for j in JOINTS])
        self._joint_axes = np.stack([self._axis_vector(j, rest["rest_bone_heads"][0].numpy()) for j in JOINTS])
        self._regions = self._vertex_regions()
        self._hair = self._hair_vertices(rest["rest_vertices"][0].numpy(), rest["rest_bone_heads"][0].numpy())
        self.texcoords = np.ascontiguousarray(rest["rest_vertices"][0].numpy(), dtype=np.float32)
        self._arm_t, self._leg_t = self._limb_positions(self.texcoords, rest["rest_bone_heads"][0].numpy())

    def _limb_positions(self, rest_vertices: np.ndarray, heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per vertex, position along the arm (0 shoulder, 0.5 elbow, 1 wrist) and leg (0 hip, 0.5 knee, 1 ankle)
        from the rest pose (NaN off the limb); sleeve and trouser lengths cut the limbs at these positions."""
        weights = self.model.vertex_bone_weights.cpu().numpy()
        indices = self.model.vertex_bone_indices.cpu().numpy()
        dominant = np.array(self.bone_labels)[indices[np.arange(len(indices)), weights.argmax(axis=1)]]
        self._dominant = dominant
        self._anchors = {}
        arm = np.full(len(rest_vertices), np.nan)
        leg = np.full(len(rest_vertices), np.nan)
        for side in (".L", ".R"):
            for out, (upper, lower, end), bones in (
                (arm, ("upperarm01", "lowerarm01", "wrist"), (("upperarm", "shoulder01"), ("lowerarm",))),
                (leg, ("upperleg01", "lowerleg01", "foot"), (("upperleg",), ("lowerleg",))),
            ):
                a, b, c = (heads[self.bone_labels.index(name + side)] for name in (upper, lower, end))
                for offset, (start, stop), prefixes in ((0.0, (a, b), bones[0]), (0.5, (b, c), bones[1])):
                    on = np.array([d.startswith(prefixes) and d.endswith(side) for d in dominant])
                    axis = stop - start
                    along = (rest_vertices[on] - start) @ axis / (axis @ axis)
                    out[on] = offset + 0.5 * np.clip(along, 0.0, 1.0)
        return arm, leg

    def _axis_vector(self, joint: Joint, heads: np.ndarray) -> np.ndarray:
        if joint.axis != "elbow":
            return np.eye(3)["xyz".index(joint.axis)]
        side = joint.bone[-2:]
        shoulder, elbow, wrist = (
            heads[self.bone_labels.index(b + side)] for b in ("upperarm01", "lowerarm01", "wrist")
        )
        hinge = np.cross(elbow - shoulder, wrist - elbow)
        return hinge / np.linalg.norm(hinge)

    def _vertex_regions(self) -> np.ndarray:
        weights = self.model.vertex_bone_weights.cpu().numpy()
        indices = self.model.vertex_bone_indices.cpu().numpy()
        dominant = indices[np.arange(len(indices)), weights.argmax(axis=1)]
        bone_region = []
        for label in self.bone_labels:
            region = next((name for name, prefixes in _REGION_PREFIXES if label.startswith(prefixes)), "shirt")
            bone_region.append(region)
        return np.array(bone_region)[dominant]

    def _hair_vertices(self, rest_vertices: np.ndarray, heads: np.ndarray) -> np.ndarray:
        """Scalp vertices: on the head, above the brow line or behind the ears (rest pose)."""
        eye = heads[self.bone_labels.index("eye.L")]
        head = self._regions == "head"
        above_brow = rest_vertices[:, 2] > eye[2] + 0.035
        back = (rest_vertices[:, 1] > eye[1] + 0.11) & (rest_vertices[:, 2] > eye[2] - 0.06)
        return head & (above_brow | back)

    @property
    def collision(self):
        if self._collision is None:
            from anny.utils.collision import SelfInterpenetrationModule

            self._collision = SelfInterpenetrationModule(self.model)
        return self._collision

    def sample_shape(self, seed: int) -> tuple[float, dict[str, torch.Tensor]]:
        """(age in years, phenotype dict of (1,) tensors) for one subject; deterministic in ``seed``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            age, phenotype = self.shape_distribution.sample(1)
        return float(age[0]), phenotype

    def sample_pose_angles(self, rng: np.random.Generator) -> np.ndarray:
        """(J,) joint angles in radians, one per entry of ``JOINTS``, truncated normal within the limits."""
        low = np.array([j.low for j in JOINTS])
        high = np.array([j.high for j in JOINTS])
        mean = np.array([j.mean for j in JOINTS])
        sigma = np.array([j.sigma for j in JOINTS])
        cdf_low = torch.special.ndtr(torch.from_numpy((low - mean) / sigma))
        cdf_high = torch.special.ndtr(torch.from_numpy((high - mean) / sigma))
        u = torch.from_numpy(rng.uniform(size=len(JOINTS)))
        standard = torch.special.ndtri(cdf_low + u * (cdf_high - cdf_low)).numpy()
        return np.clip(mean + sigma * standard, low, high)

    def pose_matrices(self, angles: np.ndarray) -> torch.Tensor:
        """(B, J) joint angles to anny pose parameters (B, bones, 4, 4) float64; unlisted bones stay identity."""
        angles = np.atleast_2d(angles)
        batch = len(angles)
        rotations = np.broadcast_to(np.eye(3), (batch, len(self.bone_labels), 3, 3)).copy()
        per_joint = _axis_angle_matrices(np.broadcast_to(self._joint_axes, (batch, *self._joint_axes.shape)), angles)
        for j, bone in enumerate(self._joint_bones):
            rotations[:, bone] = per_joint[:, j] @ rotations[:, bone]
        pose = np.broadcast_to(np.eye(4), (batch, len(self.bone_labels), 4, 4)).copy()
        pose[:, :, :3, :3] = rotations
        return torch.from_numpy(pose)

    def posed_vertices(self, phenotypes: dict[str, torch.Tensor], angles: np.ndarray) -> np.ndarray:
        """Vertices (B, V, 3) float64 in metres for phenotypes (dict of (B,) tensors) and (B, J) joint angles."""
        with torch.no_grad():
            out = self.model(pose_parameters=self.pose_matrices(angles), phenotype_kwargs=phenotypes)
        return out["vertices"].numpy()

    def colliding_triangles(self, vertices: np.ndarray) -> int:
        """Number of triangles of a posed mesh (V, 3) that intersect a triangle of a non-adjacent body part."""
        colliding = self.collision.detect_self_intersections(torch.from_numpy(np.asarray(vertices, np.float32)))
        return int((colliding >= 0).sum())

    def framing_anchor(self, framing: str) -> np.ndarray | None:
        """(V,) bool of the vertices a framing puts in the crop (None = the whole body): ``upper_body`` is the
        trunk, shoulders and head (hips up), ``head_shoulders`` the head, neck, clavicles and shoulders."""
        prefixes = {
            "upper_body": ("spine", "clavicle", "shoulder01", "neck", "head", "eye"),
            "head_shoulders": ("clavicle", "shoulder01", "neck", "head", "eye", "spine05"),
        }.get(framing)
        if prefixes is None:
            return None
        if framing not in self._anchors:
            self._anchors[framing] = np.array([d.startswith(prefixes) for d in self._dominant])
        return self._anchors[framing]

    def sample_clothing(self, rng: np.random.Generator) -> SubjectLook:
        """Random skin tone, hair, and textured garments (shirt, trousers, shoes each with a procedural pattern from
        ``render.PATTERN_KINDS`` and multi-scale noise grain) with varied sleeve length (none to wrist) and trouser
        length (shorts to ankle)."""
        from rgbd_fusion_core.synth.render import PATTERN_KINDS, Pattern

        tone = rng.uniform(0, len(_SKIN_TONES) - 1)
        low = int(tone)
        skin = _SKIN_TONES[low] + (tone - low) * (_SKIN_TONES[min(low + 1, len(_SKIN_TONES) - 1)] - _SKIN_TONES[low])
        skin = skin * rng.uniform(0.92, 1.08, size=3)

        def random_colour(saturation: tuple[float, float], value: tuple[float, float]) -> np.ndarray:
            return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*saturation), rng.uniform(*value)))

        garments = {
            "shirt": ((0.0, 0.9), (0.1, 0.95), (0.25, 0.25, 0.15, 0.15, 0.1, 0.1)),
            "trousers": ((0.0, 0.7), (0.08, 0.7), (0.45, 0.1, 0.1, 0.1, 0.05, 0.2)),
            "shoes": ((0.0, 0.4), (0.05, 0.9), (0.7, 0.1, 0.0, 0.0, 0.0, 0.2)),
        }
        colours, patterns, description = {}, [Pattern()], {}
        for name, (saturation, value, kind_weights) in garments.items():
            base = random_colour(saturation, value)
            kind = PATTERN_KINDS[int(rng.choice(len(PATTERN_KINDS), p=np.array(kind_weights) / sum(kind_weights)))]
            second = random_colour(saturation, value) if rng.uniform() < 0.6 else base * rng.uniform(0.4, 0.8)
            frequency = float(np.exp(rng.uniform(np.log(4.0), np.log(40.0))))
            angle = float(rng.choice([0.0, np.pi / 2, rng.uniform(0, np.pi)]))
            grain = float(rng.uniform(0.05, 0.35))
            colours[name] = base
            patterns.append(Pattern(kind, tuple(second.tolist()), frequency, angle, grain))
            description[name] = {"colour": base.round(3).tolist(), "pattern": kind, "frequency": round(frequency, 2)}
        hair = _HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))] * rng.uniform(0.8, 1.2)
        bald = rng.uniform() < 0.1
        sleeve = float(
            rng.choice([0.0, rng.uniform(0.15, 0.45), rng.uniform(0.5, 0.85), 1.0], p=[0.1, 0.35, 0.1, 0.45])
        )
        trouser = float(rng.choice([rng.uniform(0.2, 0.45), rng.uniform(0.6, 0.85), 1.0], p=[0.2, 0.1, 0.7]))
        region_colour = {
            "eyes": np.array([0.25, 0.2, 0.18]),
            "shoes": colours["shoes"],
            "forearm": skin,
            "hands": skin,
            "head": skin,
            "shin": skin,
            "trousers": colours["trousers"],
            "shirt": colours["shirt"],
        }
        albedo = np.zeros((len(self._regions), 3))
        material = np.zeros(len(self._regions), np.float32)
        for region, colour in region_colour.items():
            albedo[self._regions == region] = colour
        shirt = (self._regions == "shirt") & ~(self._arm_t >= sleeve)  # NaN (torso) compares False: stays shirt
        shirt |= self._arm_t < sleeve
        trousers = (self._regions == "trousers") & ~(self._leg_t >= trouser)
        trousers |= self._leg_t < trouser
        skin_limbs = ((self._arm_t >= sleeve) | (self._leg_t >= trouser)) & ~(self._regions == "hands")
        albedo[skin_limbs] = skin
        for slot, (name, where) in enumerate(
            (("shirt", shirt), ("trousers", trousers), ("shoes", self._regions == "shoes")), start=1
        ):
            albedo[where] = colours[name]
            material[where] = slot
        if not bald:
            albedo[self._hair] = hair
        albedo *= rng.uniform(0.97, 1.03, size=(len(albedo), 1))
        description.update(
            {"skin": skin.round(3).tolist(), "sleeve_length": round(sleeve, 3), "trouser_length": round(trouser, 3)}
        )
        description["hair"] = "bald" if bald else hair.round(3).tolist()
        return SubjectLook(np.clip(albedo, 0, 1).astype(np.float32), description, material, tuple(patterns))

    def sample_look(self, rng: np.random.Generator) -> SubjectLook:
        """Random skin tone, shirt (short or long sleeves), trousers or shorts, shoes, hair."""
        tone = rng.uniform(0, len(_SKIN_TONES) - 1)
        low = int(tone)
        skin = _SKIN_TONES[low] + (tone - low) * (_SKIN_TONES[min(low + 1, len(_SKIN_TONES) - 1)] - _SKIN_TONES[low])

        def random_colour(saturation: tuple[float, float], value: tuple[float, float]) -> np.ndarray:
            return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*saturation), rng.uniform(*value)))

        shirt = random_colour((0.0, 0.9), (0.15, 0.95))
        trousers = random_colour((0.0, 0.7), (0.1, 0.7))
        shoes = random_colour((0.0, 0.4), (0.05, 0.9))
        hair = _HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))] * rng.uniform(0.8, 1.2)
        if rng.uniform() < 0.1:
            hair = skin  # bald
        long_sleeves = rng.uniform() < 0.5
        long_trousers = rng.uniform() < 0.75
        colours = {
            "eyes": np.array([0.25, 0.2, 0.18]),
            "shoes": shoes,
            "forearm": shirt if long_sleeves else skin,
            "hands": skin,
            "head": skin,
            "shin": trousers if long_trousers else skin,
            "trousers": trousers,
            "shirt": shirt,
        }
        albedo = np.zeros((len(self._regions), 3))
        for region, colour in colours.items():
            albedo[self._regions == region] = colour
        albedo[self._hair] = hair
        albedo *= rng.uniform(0.97, 1.03, size=(len(albedo), 1))  # faint per-vertex texture
        description = {
            "skin": skin.round(3).tolist(),
            "shirt": shirt.round(3).tolist(),
            "trousers": trousers.round(3).tolist(),
            "long_sleeves": bool(long_sleeves),
            "long_trousers": bool(long_trousers),
        }
        return SubjectLook(np.clip(albedo, 0, 1).astype(np.float32), description)
