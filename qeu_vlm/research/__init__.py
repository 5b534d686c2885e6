"""How this project showed, on a CPU, that its pipeline teaches a VLM to inspect: the learn profile, the vision
warm-up, the probes and the localisation attempts. Nothing on the main path imports this package; README.md here
tells the story and how to rerun each part."""
