"""The ground floor: what data/ and extract/ (and above them model/ and report/) share. Imports nothing from them."""
