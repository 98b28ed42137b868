"""What every package of the suite shares."""
