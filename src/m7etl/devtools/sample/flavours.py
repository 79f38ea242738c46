"""Flavour for the built-in datasets: realistic word lists, weights and derived columns.

A flavour only proposes values; the column still filters and clips them by the contract's
rules (see :class:`~m7etl.devtools.sample.columns.Col`), so editing a contract never makes
the generator write invalid clean rows. Unknown datasets get the empty flavour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from m7etl.core.contracts import Column

# free-text columns of any dataset: phrases of these words (accents test the encodings)
WORDS = ("soleil", "maison", "Paris", "été", "rivière", "marché", "château", "forêt", "Lyon",
         "océan", "café", "théâtre", "jardin", "école", "Noël", "histoire", "voyage", "cœur",
         "nuit", "ville", "Bretagne", "lumière", "musée", "fête", "saison", "Bruxelles")

_TITLES = (
    "Le Journal de 20h", "Astérix, le film", "Le 19/20", "Météo", "Top Chef",
    'Le "Grand" Débat', "Koh-Lanta", "C'est pas sorcier", "Questions pour un champion",
    "Des chiffres et des lettres", "Les Experts : Miami", "Plus belle la vie", "Zone interdite",
    "Envoyé spécial", "Thalassa", "Tour de France, 12e étape", "Ligue 1 : PSG – OM",
    "Le Bureau des légendes", "L'Amour est dans le pré", "Ça commence aujourd'hui",
    "Les Reines du shopping", "Fort Boyard", "Le Meilleur Pâtissier", "Faites entrer l'accusé",
    "Capital", "Secrets d'histoire", "Télématin", "Bienvenue chez les Ch'tis",
    "Intervilles", 'Cinéma : "Les Choristes"', "Mozart, l'opéra rock", "Dora l'exploratrice",
    "JT 13h", "Le Bourdon, épisode 3", "Les Simpson", "Journal télévisé (édition régionale)",
    "Roland-Garros : finale", "Quotidien", "Taratata", "Le Monde de Nemo",
)
_CHANNELS = (
    "TF1", "France 2", "France 3 Bretagne", "France 5", "Canal+", "M6", "Arte", "C8", "W9",
    "TMC", "BFM TV", "CNews", "LCI", "franceinfo:", "Gulli", "TV5MONDE", "RTL-TVI", "La Une",
    "Tipik", "VRT 1", "Canvas", "VTM", "Eurosport 1", "Ushuaïa TV", "Planète+", "Mezzo",
    "Télé Bruxelles", "Disney Channel", "MTV Hits", "Science & Vie TV", "Chérie 25", "RMC Story",
    "Paris Première", "Téva", "Canal+ Sport", "Ciné+ Frisson", "Nickelodeon", "Trace Urban",
)
_FIRMWARE = ("3.12.4", "3.12.5", "4.0.1", "4.1.0", "4.1.2", "5.0.0", "2.9.17", "4.2.3")


@dataclass
class Flavour:
    pools: dict[str, tuple[tuple[str, ...], tuple[float, ...] | None]] = field(default_factory=dict)
    samplers: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = field(
        default_factory=dict)  # column -> (rng, n, day_start_s) -> raw values
    sequential_key: bool = False
    mutable: tuple[str, ...] = ()  # columns a duplicate_key row redraws
    derive: Callable[[dict, dict[str, Column]], None] | None = None


def _epg_derive(values: dict, cols: dict[str, Column]) -> None:
    if {"start_time", "end_time", "duration_s"} <= cols.keys() and all(
            cols[c].type == t for c, t in (("start_time", "timestamp"), ("end_time", "timestamp"),
                                           ("duration_s", "integer"))):
        values["end_time"] = values["start_time"] + values["duration_s"]


def _viewing_derive(values: dict, cols: dict[str, Column]) -> None:
    if not {"session_start", "session_end", "duration_s"} <= cols.keys():
        return
    if cols["session_start"].type != "timestamp" or cols["session_end"].type != "timestamp":
        return
    values["session_end"] = values["session_start"] + values["duration_s"]
    if "view_hour" in cols and cols["view_hour"].type == "integer":
        values["view_hour"] = (values["session_start"] // 3600) % 24


def _flavours() -> dict[str, Flavour]:
    def tenths(mean, sd):
        return lambda rng, n, d0: np.rint(rng.normal(mean, sd, n) * 10).astype(np.int64)

    return {
        "Device": Flavour(
            pools={
                "firmware_version": (_FIRMWARE, None),
                "status": (("active", "inactive", "faulty", "returned"), (0.85, 0.08, 0.04, 0.03)),
            },
            samplers={"signal_quality_pct": tenths(74, 14)},
            mutable=("firmware_version", "status", "signal_quality_pct", "region"),
        ),
        "EPG": Flavour(
            pools={
                "title": (_TITLES, None),
                "rating": (("TP", "-10", "-12", "-16", "-18"), (0.7, 0.12, 0.1, 0.06, 0.02)),
            },
            samplers={
                "channel_id": lambda rng, n, d0: rng.integers(1, 151, n),
                "duration_s": lambda rng, n, d0: rng.choice(
                    np.array([600, 1200, 1800, 2700, 3600, 5400, 6300, 7200]), n),
                "start_time": lambda rng, n, d0: d0 + rng.integers(0, 288, n) * 300,
            },
            mutable=("title", "rating"),
            derive=_epg_derive,
        ),
        "Viewing": Flavour(
            pools={"playback_mode": (("live", "timeshift", "replay", "vod"),
                                     (0.7, 0.1, 0.12, 0.08))},
            samplers={
                "channel_id": lambda rng, n, d0: rng.integers(1, 151, n),
                "duration_s": lambda rng, n, d0: np.rint(rng.lognormal(6.5, 1.1, n)).astype(int),
            },
            derive=_viewing_derive,
        ),
        "Channel": Flavour(
            pools={"channel_name": (_CHANNELS, None),
                   "language": (("fr", "nl", "de", "en"), (0.6, 0.3, 0.04, 0.06))},
            samplers={"updated_at": lambda rng, n, d0: d0 - rng.integers(0, 400 * 86400, n),
                      "launched_on": lambda rng, n, d0: d0 // 86400 - rng.integers(400, 9000, n)},
            sequential_key=True,
            mutable=("package", "is_hd"),
        ),
    }


def flavour_for(dataset: str) -> Flavour:
    """The dataset's flavour, or the empty one for a dataset without."""
    return _flavours().get(dataset, Flavour())
