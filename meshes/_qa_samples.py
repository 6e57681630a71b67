"""Sample tasks of the question-answering mesh (data only).

Each question comes with four passages on neighbouring topics, so that a scorer has to
tell the passage that answers from passages that merely share words with the question.
The answering passage is in a different slot for each question.
"""

from __future__ import annotations

from typing import Any

SAMPLE_QUESTIONS: tuple[dict[str, Any], ...] = (
    {
        "question_id": "tides",
        "question": "What causes the tides in the ocean?",
        "passages": [
            "Ocean currents move heat from the equator towards the poles. Wind and "
            "differences in water temperature and salt drive the largest currents.",
            "Tides are caused mainly by the gravity of the Moon, which pulls the ocean into "
            "two bulges on opposite sides of the Earth. The Sun adds a smaller pull, so the "
            "tides are strongest when Sun and Moon line up.",
            "The seasons change because the axis of the Earth is tilted. Each hemisphere "
            "gets more direct sunlight for half of the year.",
            "Waves form when wind blows across the surface of the sea. The longer the wind "
            "blows over open water, the taller the waves grow.",
        ],
    },
    {
        "question_id": "xack",
        "question": "Which command acknowledges a message in a Redis consumer group?",
        "passages": [
            "XADD appends a new entry to a stream and returns its id. If the stream does "
            "not exist yet, Redis creates it.",
            "XREADGROUP reads entries as a named consumer of a group. Entries it returns "
            "stay in the pending entries list until they are acknowledged.",
            "XACK acknowledges a message: it removes the entry from the pending entries "
            "list of the consumer group. A message that is never acknowledged can be "
            "claimed by another consumer.",
            "XTRIM shortens a stream to a maximum length or removes entries older than a "
            "given id. Trimming does not look at consumer groups.",
        ],
    },
    {
        "question_id": "coffee",
        "question": "How many calories are in a cup of black coffee?",
        "passages": [
            "Coffee contains caffeine, which keeps you alert by blocking adenosine. A "
            "typical cup holds about 95 milligrams of caffeine.",
            "Green tea has fewer calories than most drinks, and many people drink it for "
            "its antioxidants.",
            "Adding milk and sugar changes coffee a lot: a latte can have more than 150 calories.",
            "A cup of black coffee has about two calories, because brewed coffee is almost "
            "all water. The calories come from small amounts of oil and protein.",
        ],
    },
    {
        "question_id": "everest",
        "question": "When did Tenzing Norgay and Edmund Hillary first reach the summit of Everest?",
        "passages": [
            "Tenzing Norgay and Edmund Hillary reached the summit of Mount Everest on 29 May "
            "1953, as members of a British expedition led by John Hunt.",
            "Mount Everest grows by a few millimetres every year as the Indian plate "
            "pushes under the Eurasian plate.",
            "Climbers on Everest use bottled oxygen above 8,000 metres, where the air holds "
            "about a third of the oxygen at sea level.",
            "Edmund Hillary later led an expedition to the South Pole and spent decades "
            "building schools and hospitals in Nepal.",
        ],
    },
)
