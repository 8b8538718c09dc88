"""The ground floor every package stands on: nothing here imports data/, extract/ or model/."""
