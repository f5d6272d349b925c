"""How good the recommendations are, and making them better: leave-one-out evaluation (`evaluate`), its report
with plots (`report`), and label-trained projections added to the search space (`tune`)."""
