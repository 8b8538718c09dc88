"""Assets and planted-cue tables for the bundled demo dataset (see ``data.demo``).

Everything here is offline: photographs bundled inside scikit-image (no pooch download), the
DejaVu font shipped with matplotlib, and hand-written per-genre vocabularies. The tables define
how strongly each modality reveals each genre; ``data.demo`` draws the cues from them.

The SET_ONLY genres are cued only inside the two ragged sets, never in the palette, the pasted
photo or the plot: a star's face among other faces (STARS) and one word among the tagline's
distractor words (CUE_WORDS). The other genres are cued in every modality.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageFont

# MM-IMDb genre names (exact spelling), most to least frequent, with a relative frequency
# loosely following MM-IMDb (Drama ~ half of all movies, Documentary rare).
GENRES: tuple[str, ...] = (
    "Drama", "Comedy", "Romance", "Thriller", "Action", "Horror", "Sci-Fi", "Documentary",
)
GENRE_WEIGHT = np.array([0.50, 0.33, 0.20, 0.19, 0.15, 0.10, 0.08, 0.05])
# Number of genres per movie: 1, 2 or 3.
N_GENRES_P = np.array([0.45, 0.38, 0.17])
# Co-occurrence affinity (row: genre already chosen, column: candidate). 1 = neutral.
_AFF = {
    ("Romance", "Drama"): 3.0, ("Romance", "Comedy"): 3.0, ("Thriller", "Horror"): 3.0,
    ("Thriller", "Action"): 2.5, ("Action", "Sci-Fi"): 3.0, ("Horror", "Sci-Fi"): 1.5,
    ("Thriller", "Drama"): 1.5, ("Documentary", "Horror"): 0.1, ("Documentary", "Sci-Fi"): 0.2,
    ("Documentary", "Romance"): 0.2, ("Documentary", "Action"): 0.3, ("Documentary", "Thriller"): 0.3,
    ("Comedy", "Horror"): 0.5,
}
AFFINITY = np.ones((len(GENRES), len(GENRES)))
for (_a, _b), _v in _AFF.items():
    i, j = GENRES.index(_a), GENRES.index(_b)
    AFFINITY[i, j] = AFFINITY[j, i] = _v


def _per_genre(**kw: float) -> np.ndarray:
    return np.array([kw[g.replace("-", "_")] for g in GENRES])


# Genres cued only inside the ragged sets (faces, tagline words): REVEAL 0 in the palette, photo
# and plot, and never a decoy there.
SET_ONLY: tuple[str, ...] = ("Thriller", "Horror", "Sci-Fi")
# Probability that a modality reveals a genre the movie has (each modality strong on some
# genres, weak on others), and the probability of a decoy cue of a random genre (not a SET_ONLY
# one outside the sets) when none was revealed.
REVEAL = {
    "palette": _per_genre(Drama=0.15, Comedy=0.35, Romance=0.30, Thriller=0.0, Action=0.65,
                          Horror=0.0, Sci_Fi=0.0, Documentary=0.55),
    "photo": _per_genre(Drama=0.15, Comedy=0.55, Romance=0.40, Thriller=0.0, Action=0.70,
                        Horror=0.0, Sci_Fi=0.0, Documentary=0.50),
    "tagline": _per_genre(Drama=0.15, Comedy=0.40, Romance=0.50, Thriller=0.60, Action=0.50,
                          Horror=0.60, Sci_Fi=0.60, Documentary=0.30),
    "plot": _per_genre(Drama=0.65, Comedy=0.55, Romance=0.55, Thriller=0.0, Action=0.45,
                       Horror=0.0, Sci_Fi=0.0, Documentary=0.75),
}
DECOY = {"palette": 0.40, "photo": 0.12, "tagline": 0.08, "plot": 0.10}
# Expected number of faces per genre (averaged over a movie's genres, Poisson, clipped to 0-4).
FACE_RATE = _per_genre(Drama=2.4, Comedy=2.0, Romance=3.2, Thriller=1.4, Action=1.4,
                       Horror=1.0, Sci_Fi=0.5, Documentary=0.3)
# Each SET_ONLY genre's star: a face only its movies show (with P_STAR), always beside 1-3 other
# faces, so that one face of the set carries the genre. `lfw:K:TINT` is LFW face K in a colour
# tint (TINTS): on MobileNetV2 crops a tinted face, like the astronaut, is told from the grey LFW
# faces by a linear probe on 20 examples (an untinted one is not: 8% false positives).
STARS = {"Thriller": "lfw:23:teal", "Horror": "lfw:17:red", "Sci-Fi": "astronaut"}
TINTS = {"red": (255, 150, 130), "teal": (150, 235, 225)}
P_STAR = 0.6
P_TITLE_ON_POSTER = 0.45
P_PLOT_EMPTY = 0.04
P_PLOT_TWO_ENTRIES = 0.20
P_IMAGE_MISSING = 0.0  # every demo movie has a poster (one image row per sample); the MM-IMDb adapter tests cover missing ones

# Poster palettes: (top colour, bottom colour, block colour) RGB. NEUTRAL when no palette cue.
PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {  # none for SET_ONLY genres
    "Drama": ((70, 80, 110), (150, 140, 130), (200, 190, 170)),
    "Comedy": ((255, 220, 40), (255, 140, 200), (60, 200, 255)),
    "Romance": ((255, 150, 180), (190, 30, 70), (255, 230, 235)),
    "Action": ((255, 120, 0), (40, 20, 10), (255, 210, 60)),
    "Documentary": ((230, 225, 200), (120, 120, 110), (40, 40, 40)),
}
NEUTRAL_PALETTE = ((150, 150, 140), (100, 105, 110), (180, 175, 165))

# Pasted photographs (bundled with scikit-image) and the genre each one plants (no SET_ONLY genre).
PHOTOS: dict[str, str] = {
    "motorcycle": "Action", "chelsea": "Comedy", "coffee": "Romance",
    "camera": "Documentary", "moon": "Documentary", "coins": "Drama",
}

# Taglines are sets of words: one cue word of the genre hidden among 2-3 neutral distractor
# words, in random order ("RIVER GHOST BLUE"), so that one OCR word among several carries the
# genre (the per-word OCR feature: set pooling can pick the word, a mean dilutes it). Posters
# without a tagline cue get, with P_PLAIN_TAGLINE, distractor words only: a band of text alone
# says nothing. Words have at most 5 letters so that 2 lines of 2 words fit in large type.
CUE_WORDS: dict[str, tuple[str, ...]] = {
    "Drama": ("TEARS", "GRIEF", "LOSS"),
    "Comedy": ("LAUGH", "FUNNY", "JOKES"),
    "Romance": ("LOVE", "KISS", "HEART"),
    "Thriller": ("SPIES", "CRIME", "KNIFE"),
    "Action": ("FIGHT", "BLAST", "GUNS"),
    "Horror": ("GHOST", "BLOOD", "DEMON"),
    "Sci-Fi": ("ALIEN", "ROBOT", "ORBIT"),
    "Documentary": ("FACTS", "TRUE", "REAL"),
}
DISTRACTOR_WORDS: tuple[str, ...] = (
    "BLUE", "CITY", "ROAD", "HOME", "WEST", "NORTH", "RIVER", "STONE", "GLASS", "PAPER", "TRAIN",
    "OCEAN", "MAPLE", "TOWER", "CLOUD", "GREEN", "SOUTH", "EAST", "WATER", "LIGHT", "HOUSE", "OPEN",
    "FIELD", "CHAIR", "PIANO", "BREAD",
)
TAGLINE_DISTRACTORS = (2, 3)  # distractor words per tagline (uniform)
P_PLAIN_TAGLINE = 0.25

# Plot sentences: "<Name> <clause>." with genre clauses (none for SET_ONLY genres), and neutral filler.
PLOT_CLAUSES: dict[str, tuple[str, ...]] = {
    "Drama": ("struggles to hold the family together after a tragic loss",
              "faces a painful choice between duty and a dying father",
              "confronts grief, guilt and the long shadow of the past",
              "fights an addiction that threatens a fragile marriage"),
    "Comedy": ("stumbles through a hilarious series of misunderstandings",
               "pretends to be a famous chef and chaos follows with silly pranks",
               "plays one ridiculous joke too many at a wacky wedding",
               "trades places with a clumsy twin in a farcical mix-up"),
    "Romance": ("falls in love with a charming stranger during a summer in Paris",
                "must choose between a fiance and a first love",
                "writes love letters to a mysterious admirer and dreams of a kiss",
                "finds romance and passion where it was least expected"),
    "Action": ("leads a commando raid with explosions, car chases and gunfights",
               "battles a gang of mercenaries in a high speed chase",
               "must stop a terrorist bomb before the city explodes",
               "fights an army of henchmen with fists and rifles"),
    "Documentary": ("is interviewed about the real history of the industry in archival footage",
                    "examines the facts, statistics and eyewitness accounts of the disaster",
                    "follows scientists through a decade of research in this documentary",
                    "narrates the true events with interviews and rare footage"),
}
FILLER: tuple[str, ...] = (
    "{a} lives in {p} with a younger sibling.", "{a} works at a small shop in {p}.",
    "The story takes place in {p} in {y}.", "{a} meets {b} on a rainy afternoon.",
    "{a} moves to {p} to start a new job.", "{a} and {b} have known each other since school.",
    "One morning {a} receives a letter from {b}.", "{a} spends the weekend in {p}.",
    "Nothing is quite what it seems for {a}.", "{b} asks {a} for a favour.",
)
NAMES = ("Anna", "Marco", "Lena", "Victor", "Sofia", "Jonas", "Mira", "Tomas", "Clara", "Hugo",
         "Nadia", "Oscar", "Ruth", "Felix", "Ines", "Paul")
PLACES = ("Lisbon", "a small town", "Chicago", "the countryside", "Berlin", "a harbour city",
          "Montreal", "the suburbs")
TITLE_WORDS = (("The", "Silent", "Blue", "Last", "Little", "Golden", "Broken", "Distant"),
               ("River", "Harbor", "Summer", "Road", "Window", "Garden", "Letter", "Bridge"))


def font_path() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path()), size)


PHOTO_MAX_SIDE = 400


@lru_cache(maxsize=None)
def photo(name: str) -> Image.Image:
    """An RGB photograph bundled with scikit-image (loaded once)."""
    import skimage.data as skd

    arr = skd.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skd, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    img = Image.fromarray(np.ascontiguousarray(arr[..., :3]).astype(np.uint8))
    scale = PHOTO_MAX_SIDE / max(img.size)  # shrink once; posters paste it at <= 264 px
    if scale < 1:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    return img


@lru_cache(maxsize=None)
def face(source: str) -> Image.Image:
    """A square RGB face: ``astronaut`` (crop around the face), ``lfw:K`` (K < 100, grey) or
    ``lfw:K:TINT`` (that face in a colour of TINTS)."""
    import skimage.data as skd

    if source == "astronaut":
        return Image.fromarray(skd.astronaut()[25:205, 140:320])  # 180 x 180, hair to chin
    _, k, *tint = source.split(":")
    gray = lfw_faces()[int(k)][..., None]  # (25, 25, 1) in [0, 1], first 100 are faces
    colour = np.array(TINTS[tint[0]] if tint else (255, 255, 255), np.float64)
    return Image.fromarray((gray * colour).round().astype(np.uint8))


@lru_cache(maxsize=1)
def lfw_faces() -> np.ndarray:
    import skimage.data as skd

    return skd.lfw_subset()[:100]
