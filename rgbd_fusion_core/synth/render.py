"""Rasterise triangle meshes with exact metric z-depth: moderngl on an EGL context (Mesa llvmpipe, no GPU needed).

The camera is a pinhole in the optical frame (x right, y down, z forward; see ``rgbd_fusion_core.geometry.camera``);
meshes are given in that frame, in metres. Each pixel gets the z of the nearest surface (perspective-correct
interpolation of camera z, so a plane is exact up to float32), a Blinn-Phong shade (ambient plus up to three
coloured directional lights, optional specular) of the per-vertex albedo with optional procedural textures
(stripes, checks, plaid, dots, multi-scale value noise) per material slot, and coverage. Occluder vertices are
drawn in colour but written as "no depth", so depth and mask keep only the unoccluded subject. One EGL context
per process (several contexts in one process misbehave on llvmpipe), created on first use by ``get_context``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEAR_M = 0.05
FAR_M = 100.0

MAX_LIGHTS = 3
PATTERN_SLOTS = 5  # material slot 0 = plain; garments/occluders use the others
OCCLUDER_FLAG = 8  # material = slot + OCCLUDER_FLAG: drawn in colour and z-test, but written as "no depth"
PATTERN_KINDS = ("plain", "stripes", "checks", "plaid", "dots", "noise")

_VERTEX_SHADER = """
#version 330
uniform vec4 intrinsics;   // fx, fy, cx, cy in pixels
uniform vec2 image_size;   // width, height in pixels
uniform vec2 clip_range;   // near, far in metres
in vec3 in_position;       // optical frame, metres
in vec3 in_normal;
in vec3 in_albedo;
in vec3 in_texcoord;       // surface-fixed coordinates (metres) for procedural textures
in float in_material;
out vec3 v_position;
out vec3 v_normal;
out vec3 v_albedo;
out vec3 v_texcoord;
flat out int v_material;
void main() {
    vec3 p = in_position;
    // pixel u = fx x / z + cx has its centre at window coordinate u + 0.5; multiply NDC by w = z.
    float clip_x = 2.0 * (intrinsics.x * p.x + (intrinsics.z + 0.5) * p.z) / image_size.x - p.z;
    // no y flip: framebuffer row 0 (read back first) is image row v = 0.
    float clip_y = 2.0 * (intrinsics.y * p.y + (intrinsics.w + 0.5) * p.z) / image_size.y - p.z;
    float n = clip_range.x, f = clip_range.y;
    float clip_z = (f + n) / (f - n) * p.z - 2.0 * f * n / (f - n);
    gl_Position = vec4(clip_x, clip_y, clip_z, p.z);
    v_position = p;
    v_normal = in_normal;
    v_albedo = in_albedo;
    v_texcoord = in_texcoord;
    v_material = int(in_material + 0.5);
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform vec3 light_direction[3];  // unit vectors from the surface towards each light, optical frame
uniform vec3 light_colour[3];     // colour times intensity
uniform int light_count;
uniform vec3 ambient_colour;
uniform float specular;
uniform float shininess;
uniform int pattern_kind[5];
uniform vec3 pattern_colour[5];
uniform float pattern_frequency[5];  // cycles per metre
uniform float pattern_angle[5];
uniform float pattern_grain[5];      // strength of multi-scale noise shading
in vec3 v_position;
in vec3 v_normal;
in vec3 v_albedo;
in vec3 v_texcoord;
flat in int v_material;
layout(location = 0) out vec4 out_colour;
layout(location = 1) out float out_depth;

float hash(vec3 p) {
    p = fract(p * vec3(0.1031, 0.1030, 0.0973));
    p += dot(p, p.yxz + 33.33);
    return fract((p.x + p.y) * p.z);
}
float value_noise(vec3 p) {
    vec3 i = floor(p);
    vec3 f = fract(p);
    f = f * f * (3.0 - 2.0 * f);
    float a = mix(hash(i), hash(i + vec3(1, 0, 0)), f.x);
    float b = mix(hash(i + vec3(0, 1, 0)), hash(i + vec3(1, 1, 0)), f.x);
    float c = mix(hash(i + vec3(0, 0, 1)), hash(i + vec3(1, 0, 1)), f.x);
    float d = mix(hash(i + vec3(0, 1, 1)), hash(i + vec3(1, 1, 1)), f.x);
    return mix(mix(a, b, f.y), mix(c, d, f.y), f.z);
}
float fbm(vec3 p) {
    return 0.5 * value_noise(p) + 0.3 * value_noise(2.7 * p + 11.0) + 0.2 * value_noise(7.3 * p + 23.0);
}
float band(float x, float width) {
    float f = fract(x);
    return step(f, width);
}

vec3 textured_albedo(int slot) {
    vec3 albedo = v_albedo;
    int kind = pattern_kind[slot];
    float freq = pattern_frequency[slot];
    float a = pattern_angle[slot];
    vec3 p = v_texcoord * freq;
    float s = p.z * cos(a) + (p.x + 0.7 * p.y) * sin(a);
    float r = -p.z * sin(a) + (p.x + 0.7 * p.y) * cos(a);
    float t = 0.0;
    if (kind == 1) t = band(s, 0.5);
    else if (kind == 2) t = mod(floor(s) + floor(r), 2.0);
    else if (kind == 3) t = clamp(0.55 * band(s, 0.3) + 0.55 * band(r, 0.3) + 0.35 * band(s * 3.0, 0.15), 0.0, 1.0);
    else if (kind == 4) t = step(length(fract(p) - 0.5), 0.22);
    else if (kind == 5) t = smoothstep(0.35, 0.65, fbm(p));
    albedo = mix(albedo, pattern_colour[slot], t);
    float grain = pattern_grain[slot];
    if (grain > 0.0) {
        albedo *= 1.0 + grain * (fbm(v_texcoord * 40.0) - 0.5) + 0.5 * grain * (value_noise(v_texcoord * 400.0) - 0.5);
    }
    return albedo;
}

void main() {
    vec3 n = normalize(v_normal);
    vec3 view = normalize(-v_position);
    if (dot(n, view) < 0.0) n = -n;  // shade whichever side faces the camera
    int slot = v_material % 8;
    vec3 albedo = slot > 0 ? textured_albedo(slot) : v_albedo;
    vec3 diffuse = ambient_colour;
    vec3 highlight = vec3(0.0);
    for (int i = 0; i < light_count; ++i) {
        vec3 l = light_direction[i];
        diffuse += light_colour[i] * max(dot(n, l), 0.0);
        if (specular > 0.0) highlight += light_colour[i] * pow(max(dot(n, normalize(l + view)), 0.0), shininess);
    }
    out_colour = vec4(albedo * diffuse + specular * highlight, 1.0);
    out_depth = v_material >= 8 ? 0.0 : v_position.z;
}
"""

_context = None


def get_context():
    """The process-wide moderngl EGL context (created on first call)."""
    global _context
    if _context is None:
        import moderngl

        try:
            _context = moderngl.create_standalone_context(backend="egl")
        except Exception as error:  # moderngl raises plain Exception when EGL is missing
            raise RuntimeError(
                "cannot create an EGL OpenGL context; install libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1"
            ) from error
    return _context


@dataclass(frozen=True)
class Lighting:
    """Blinn-Phong lighting: colour = albedo * (ambient * ambient_colour + sum_i c_i max(n . l_i, 0))
    + specular * sum_i c_i max(n . h_i, 0)^shininess. The key light has ``direction`` (3,) towards the light in the
    optical frame (normalised on use) and c = intensity * ``colour``; ``extra`` holds up to two more lights as
    (direction, rgb intensity). The defaults are the plain Lambertian model (one white light, no specular)."""

    direction: tuple[float, float, float] = (0.3, -0.5, -1.0)
    intensity: float = 0.7
    ambient: float = 0.35
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient_colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    extra: tuple = ()
    specular: float = 0.0
    shininess: float = 16.0

    def lights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(unit direction, rgb intensity) of every light, the key light first."""
        lights = [(self.direction, self.intensity * np.asarray(self.colour, np.float64))] + list(self.extra)
        if len(lights) > MAX_LIGHTS:
            raise ValueError(f"at most {MAX_LIGHTS} lights, got {len(lights)}")
        out = []
        for direction, colour in lights:
            direction = np.asarray(direction, np.float64)
            out.append((direction / np.linalg.norm(direction), np.asarray(colour, np.float64)))
        return out


@dataclass(frozen=True)
class Pattern:
    """A procedural texture for one material slot: ``kind`` one of ``PATTERN_KINDS``, second ``colour`` (rgb in
    [0, 1]) blended over the vertex albedo, ``frequency`` in cycles per metre of the texture coordinates, ``angle``
    (radians) of stripes/checks, and ``grain`` (0 = none) the strength of multi-scale noise shading."""

    kind: str = "plain"
    colour: tuple[float, float, float] = (0.0, 0.0, 0.0)
    frequency: float = 10.0
    angle: float = 0.0
    grain: float = 0.0


@dataclass(frozen=True)
class RenderedView:
    """One rendered view: ``rgb`` (H, W, 3) float32 shaded colour in [0, ~1] (0 outside), ``depth_m`` (H, W)
    float32 z in metres (0 = no surface, and 0 on occluders), ``mask`` (H, W) bool visible non-occluder surface,
    ``coverage`` (H, W) bool any surface, occluders included (None: same as mask)."""

    rgb: np.ndarray
    depth_m: np.ndarray
    mask: np.ndarray
    coverage: np.ndarray | None = None


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) float32 of a mesh (V, 3) with triangles (F, 3)."""
    v = np.asarray(vertices, dtype=np.float32)
    tri = v[faces]
    a, b = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    face_normals = (  # cross(a, b) written out: np.cross is several times slower
        a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1],
        a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
        a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0],
    )
    corners = np.asarray(faces, dtype=np.int64).reshape(-1)
    normals = np.stack([np.bincount(corners, np.repeat(n, 3), minlength=len(v)) for n in face_normals], axis=1)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.maximum(length, 1e-12)).astype(np.float32)


class MeshRenderer:
    """Renders a triangle mesh given in the optical frame through pinhole intrinsics at one or more sizes."""

    def __init__(self):
        self.ctx = get_context()
        self.program = self.ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        self._framebuffers = {}
        self._vertex_buffer = None
        self._index_buffer = None
        self._vertex_array = None

    def _framebuffer(self, width: int, height: int):
        key = (width, height)
        if key not in self._framebuffers:
            colour = self.ctx.texture(key, 4, dtype="f4")
            depth = self.ctx.texture(key, 1, dtype="f4")
            self._framebuffers[key] = self.ctx.framebuffer(
                color_attachments=[colour, depth], depth_attachment=self.ctx.depth_renderbuffer(key)
            )
        return self._framebuffers[key]

    def _upload(self, vertices, faces, normals, albedo, texcoords, material) -> None:
        interleaved = np.concatenate(
            [np.asarray(a, dtype=np.float32).reshape(-1, 3) for a in (vertices, normals, albedo, texcoords)]
            + [np.asarray(material, dtype=np.float32).reshape(-1, 1)],
            axis=1,
        )
        vertex_bytes = np.ascontiguousarray(interleaved).tobytes()
        index_bytes = np.ascontiguousarray(faces, dtype=np.uint32).tobytes()
        if self._vertex_buffer is None:
            self._vertex_buffer = self.ctx.buffer(reserve=len(vertex_bytes), dynamic=True)
            self._index_buffer = self.ctx.buffer(reserve=len(index_bytes), dynamic=True)
            self._vertex_array = self.ctx.vertex_array(
                self.program,
                [
                    (
                        self._vertex_buffer,
                        "3f 3f 3f 3f 1f",
                        "in_position",
                        "in_normal",
                        "in_albedo",
                        "in_texcoord",
                        "in_material",
                    )
                ],
                index_buffer=self._index_buffer,
                index_element_size=4,
            )
        for buffer, data in ((self._vertex_buffer, vertex_bytes), (self._index_buffer, index_bytes)):
            if buffer.size != len(data):
                buffer.orphan(len(data))
            buffer.write(data)

    def _set_uniforms(self, lighting: Lighting, patterns) -> None:
        lights = lighting.lights()
        padded = lights + [(np.array([0.0, 0.0, -1.0]), np.zeros(3))] * (MAX_LIGHTS - len(lights))
        self.program["light_direction"].value = [tuple(d) for d, _ in padded]
        self.program["light_colour"].value = [tuple(c) for _, c in padded]
        self.program["light_count"].value = len(lights)
        self.program["ambient_colour"].value = tuple(lighting.ambient * np.asarray(lighting.ambient_colour))
        self.program["specular"].value = float(lighting.specular)
        self.program["shininess"].value = float(lighting.shininess)
        patterns = list(patterns or [])
        if len(patterns) > PATTERN_SLOTS:
            raise ValueError(f"at most {PATTERN_SLOTS} patterns, got {len(patterns)}")
        patterns += [Pattern()] * (PATTERN_SLOTS - len(patterns))
        for name, values in (
            ("pattern_kind", [PATTERN_KINDS.index(p.kind) for p in patterns]),
            ("pattern_colour", [tuple(float(c) for c in p.colour) for p in patterns]),
            ("pattern_frequency", [float(p.frequency) for p in patterns]),
            ("pattern_angle", [float(p.angle) for p in patterns]),
            ("pattern_grain", [float(p.grain) for p in patterns]),
        ):
            if name in self.program:
                self.program[name].value = values

    def render(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        views: list[tuple[np.ndarray, int, int]],
        albedo: np.ndarray | None = None,
        normals: np.ndarray | None = None,
        lighting: Lighting = Lighting(),
        texcoords: np.ndarray | None = None,
        material: np.ndarray | None = None,
        patterns: list[Pattern] | None = None,
    ) -> list[RenderedView]:
        """Render one mesh through several cameras sharing the optical frame.

        vertices (V, 3) metres in the optical frame; faces (F, 3) vertex indices; views: (K (3, 3), width, height)
        per output; albedo (V, 3) in [0, 1] (default grey); normals (V, 3) (default area-weighted vertex normals);
        texcoords (V, 3) surface-fixed coordinates for the patterns (default: the vertices); material (V,) int per
        vertex: pattern slot 0-4 (0 = plain albedo; ``patterns[k]`` textures slot k) plus ``OCCLUDER_FLAG`` for
        occluder vertices (coloured and hiding what lies behind them, but with depth 0 and outside ``mask``).
        """
        import moderngl

        faces = np.asarray(faces)
        if albedo is None:
            albedo = np.full((len(vertices), 3), 0.7, np.float32)
        if normals is None:
            normals = vertex_normals(vertices, faces)
        if texcoords is None:
            texcoords = vertices
        if material is None:
            material = np.zeros(len(vertices), np.float32)
        self._upload(vertices, faces, normals, albedo, texcoords, material)
        self._set_uniforms(lighting, patterns)
        self.program["clip_range"].value = (NEAR_M, FAR_M)
        self.ctx.enable(moderngl.DEPTH_TEST)
        self.ctx.disable(moderngl.CULL_FACE)
        results = []
        for K, width, height in views:
            framebuffer = self._framebuffer(width, height)
            framebuffer.use()
            framebuffer.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            K = np.asarray(K, dtype=np.float64)
            self.program["intrinsics"].value = (K[0, 0], K[1, 1], K[0, 2], K[1, 2])
            self.program["image_size"].value = (float(width), float(height))
            self._vertex_array.render(moderngl.TRIANGLES, vertices=faces.size)
            colour = np.frombuffer(framebuffer.read(components=4, attachment=0, dtype="f4"), np.float32)
            colour = colour.reshape(height, width, 4)
            depth = np.frombuffer(framebuffer.read(components=1, attachment=1, dtype="f4"), np.float32)
            depth = depth.reshape(height, width).copy()
            results.append(RenderedView(colour[:, :, :3].copy(), depth, depth > 0, colour[:, :, 3] > 0))
        return results
