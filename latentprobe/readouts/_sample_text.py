"""Short plain-English passages, written for this package, for fitting and checking a tuned lens offline.

Twelve paragraphs on unrelated everyday topics (about 60-90 tokens each with a BPE tokenizer), so a
held-out split by paragraph holds text the lens was not fitted on. They are sample text for examples,
benchmarks and tests; fit a lens for real work on text from the distribution you will read.
"""

from __future__ import annotations

__all__ = ["SAMPLE_TEXTS"]

SAMPLE_TEXTS: tuple[str, ...] = (
    "The bakery on the corner opens at six in the morning. By seven there is usually a queue of people "
    "waiting for bread, and the smell of warm loaves drifts down the street. The owner says the secret is "
    "patience: the dough rests overnight in a cool room before it goes into the oven.",
    "Rivers carry sand and small stones from the mountains to the sea. Where the water slows down, near "
    "the mouth of the river, the sand settles and builds wide flat banks. Over many years these banks can "
    "grow into a delta, with channels that split and join again like the branches of a tree.",
    "When you learn to ride a bicycle, the hardest part is trusting that the bicycle will stay upright "
    "once it is moving. Most children start on a quiet path with a parent holding the seat. After a few "
    "days they pedal away on their own and rarely remember how difficult it seemed at first.",
    "The library lends books, music and films for three weeks at a time. Members can renew an item twice "
    "if nobody else has reserved it. Late returns cost a small fine, but the librarians often forgive it "
    "for children and for anyone who brings back a book that was lost for a long time.",
    "A good cup of tea depends on the water as much as on the leaves. Water that has boiled for too long "
    "loses its oxygen and makes the tea taste flat. Green tea prefers water that is hot but not boiling, "
    "while black tea is best made with water straight from the kettle.",
    "The train to the coast leaves every hour from the main station. The journey takes about ninety "
    "minutes and passes through farms, small villages and a long tunnel under the hills. In summer the "
    "carriages are full of families carrying towels, umbrellas and bags of food for the beach.",
    "Bees visit thousands of flowers in a single day. They collect nectar, which they turn into honey, "
    "and pollen, which feeds the young bees in the hive. As they move from flower to flower they carry "
    "pollen with them, and this is how many fruits and vegetables are able to grow.",
    "Our neighbour has been building a wooden boat in his garage for almost four years. He works on it "
    "every weekend, cutting each plank by hand and fitting it carefully to the frame. He says he will "
    "take it to the lake next spring, although he has said the same thing every spring so far.",
    "Snow fell all night, and in the morning the whole town was quiet. Cars stayed in their driveways and "
    "the schools were closed. Children ran outside to build snowmen, while their parents cleared the paths "
    "with shovels and talked to neighbours they had not seen for weeks.",
    "The museum has a new room about the history of clocks. Visitors can see a water clock from ancient "
    "times, a tall pendulum clock and the small gears of a pocket watch under a glass. A guide explains "
    "how people measured time before there were clocks in every house.",
    "To plant a tree, dig a hole twice as wide as its roots but no deeper. Place the tree in the middle, "
    "fill the hole with soil and press it down gently. Water it well during the first summer, because "
    "young trees need time to grow the deep roots that will later find water on their own.",
    "The market in the old square sells fruit, cheese, flowers and second-hand books. Farmers arrive "
    "before sunrise to set up their stalls. By noon the best strawberries are gone, and by the middle of "
    "the afternoon the square is empty again except for pigeons looking for crumbs.",
)
